#!/usr/bin/env python3
"""Write a single-layer OCI image layout (linux/amd64) from local files.

Usage:
  oci_image.py OUT_DIR --tag TAG [--name FULL_NAME] [--user UID:GID]
               [--entrypoint JSON_LIST] [--cmd JSON_LIST] [--env K=V ...]
               [--file SRC:DEST[:MODE] ...] [--link TARGET:DEST ...] [--dir DEST ...]

The layer is reproducible (sorted entries, mtime 0, uid/gid 0), so the same inputs give
the same digests. OUT_DIR is replaced. The manifest in index.json is annotated with
org.opencontainers.image.ref.name=TAG (skopeo's oci:OUT_DIR:TAG) and, with --name,
io.containerd.image.name=FULL_NAME (`ctr images import` names the image by it).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile


def fail(msg):
    sys.exit(f"oci_image: ERROR: {msg}")


def parse_list(text, flag):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{flag} must be a JSON list of strings: {e}")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"{flag} must be a JSON list of strings, got {text}")
    return value


def parents(dest):
    parts = dest.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def layer_tar(files, links, dirs):
    entries = {}  # path in the image (no leading /) -> TarInfo, data

    def add_dir(path):
        if path and path not in entries:
            info = tarfile.TarInfo(path)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            entries[path] = (info, None)

    for d in dirs:
        for p in parents(d + "/x"):
            add_dir(p)
    for src, dest, mode in files:
        for p in parents(dest):
            add_dir(p)
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as e:
            fail(f"cannot read {src}: {e}")
        info = tarfile.TarInfo(dest.strip("/"))
        info.size = len(data)
        info.mode = mode
        entries[info.name] = (info, data)
    for target, dest in links:
        for p in parents(dest):
            add_dir(p)
        info = tarfile.TarInfo(dest.strip("/"))
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        entries[info.name] = (info, None)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--name")
    ap.add_argument("--user")
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--link", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    a = ap.parse_args()

    files = []
    for spec in a.file:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            fail(f"--file {spec}: expected SRC:DEST[:MODE]")
        mode = int(parts[2], 8) if len(parts) == 3 else 0o755
        files.append((parts[0], parts[1], mode))
    links = []
    for spec in a.link:
        target, sep, dest = spec.partition(":")
        if not sep:
            fail(f"--link {spec}: expected TARGET:DEST")
        links.append((target, dest))

    tar = layer_tar(files, links, a.dir)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    layer = gzip.compress(tar, mtime=0)

    config = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] + a.env}
    if a.user:
        config["User"] = a.user
    if a.entrypoint:
        config["Entrypoint"] = parse_list(a.entrypoint, "--entrypoint")
    if a.cmd:
        config["Cmd"] = parse_list(a.cmd, "--cmd")
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/lib/node/oci_image.py"}],
    }

    shutil.rmtree(a.out, ignore_errors=True)
    blobs = os.path.join(a.out, "blobs", "sha256")
    os.makedirs(blobs)

    def blob(data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    config_desc = blob(json.dumps(image_config, sort_keys=True).encode(),
                       "application/vnd.oci.image.config.v1+json")
    layer_desc = blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc = blob(json.dumps(manifest, sort_keys=True).encode(),
                         "application/vnd.oci.image.manifest.v1+json")
    annotations = {"org.opencontainers.image.ref.name": a.tag}
    if a.name:
        annotations["io.containerd.image.name"] = a.name
    manifest_desc["annotations"] = annotations
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    with open(os.path.join(a.out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(a.out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(manifest_desc["digest"])


if __name__ == "__main__":
    main()
