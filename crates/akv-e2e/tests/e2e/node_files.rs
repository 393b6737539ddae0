//! Files (issue 17) on the real node: `akv-injector.io/file.*` annotations become files in
//! the in-memory `akv-injector-files` volume, written by akv-env as the container's user
//! before the app starts, under a read-only root filesystem and `restricted`. The app
//! prints each file's digest, mode and owner and the directory's names, never a value.

use akv_e2e::app_output::{digest, parse_printed};
use akv_testkit::keyvault_bed::{openssl, self_signed};
use serde_json::json;

use crate::bed::Ctx;
use crate::checks::assert_no_secret;
use crate::node::{print_digests, wait_finished};
use crate::node_pods::{app_container, logs, node_template, status_of, NODE_SA, NS_NODE};
use crate::objects::{in_ns, pod};

const FILES_PATH: &str = "/etc/tls";
const APP_CONF: &str =
    "user = ${akv:db-config#json:db.user}\nport = ${akv:db-config#json:db.port}\n";

pub(crate) fn certificate_and_json_fields_as_files(ctx: &mut Ctx) {
    // A certificate as Key Vault keeps one imported from PEM: its secret holds the key and
    // the certificate, the certificate object its DER.
    let dir = ctx.work.path().join("node-files");
    std::fs::create_dir_all(&dir).expect("dir");
    self_signed(&ctx.kv, &dir, "web.key", "web.pem", "/CN=web.e2e", &[]);
    openssl(
        &ctx.kv,
        &dir,
        &[
            "x509", "-in", "web.pem", "-outform", "DER", "-out", "web.der",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    let (key_pem, cert_pem) = (read("web.key"), read("web.pem"));
    let cer = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(dir.join("web.der")).expect("der"))
    };
    ctx.kv.control(
        "/vault/node/certificate",
        json!({"name": "web-tls", "value": format!("{key_pem}{cert_pem}"),
               "contentType": "application/x-pem-file", "cer": cer}),
    );
    let password = format!("pw-{}", akv_testkit::random_hex(12));
    let config = json!({"db": {"user": "shop", "port": 5432, "password": password}});
    ctx.kv.secret("node", "db-config", &config.to_string());
    ctx.secrets.insert("db-config-password", password.clone());

    let files = ["tls.crt", "tls.key", "app.conf"].map(|f| format!("{FILES_PATH}/{f}"));
    let c = app_container(
        ctx,
        "web",
        Some(print_digests()),
        json!([
            {"name": "DB_PASSWORD", "value": "akv:db-config#json:db.password"},
            {"name": "DIGEST_FILES", "value": files.join(" ")},
            {"name": "DIGEST_DIRS", "value": FILES_PATH},
        ]),
        "DB_PASSWORD AKV_INJECTOR_FILES_PATH",
    );
    let mut t = node_template(ctx, NODE_SA, "Never", json!([c]));
    let a = &mut t["metadata"]["annotations"];
    a["akv-injector.io/files-path"] = json!(FILES_PATH);
    a["akv-injector.io/file.tls.crt"] = json!("web-tls#cert");
    a["akv-injector.io/file.tls.key"] = json!("web-tls#key");
    a["akv-injector.io/file.app.conf"] = json!(APP_CONF);
    let name = "web-files";
    ctx.k.apply_ok(&in_ns(&pod(name, &t), NS_NODE));
    let p = wait_finished(ctx, name, 180);
    let log = logs(ctx, name, "web", false);
    assert_no_secret(ctx, &log, "the log of web-files/web");
    assert!(!log.contains("BEGIN"), "PEM in the log: {log}");
    let s = status_of(&p, "web");
    assert_eq!(
        s["state"]["terminated"]["exitCode"], 0,
        "web: {s}\nlog:\n{log}"
    );
    let volumes = p["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("akv-injector-files") && volumes.contains("Memory"),
        "no in-memory files volume: {volumes}"
    );

    let seen = parse_printed(&log);
    let want = [
        ("tls.crt", digest(&cert_pem)),
        ("tls.key", digest(&key_pem)),
        ("app.conf", digest("user = shop\nport = 5432\n")),
    ];
    for (file, d) in want {
        let path = format!("{FILES_PATH}/{file}");
        assert_eq!(
            seen.digests.get(&format!("file:{path}")),
            Some(&d),
            "{path}: {seen:?}"
        );
        assert_eq!(
            seen.stats.get(&path).map(String::as_str),
            Some("400 65532"),
            "{path}: mode 0400, owned by the container's user"
        );
    }
    assert_eq!(
        seen.dirs.get(FILES_PATH).map(Vec::as_slice),
        Some(&["app.conf".to_string(), "tls.crt".into(), "tls.key".into()][..]),
        "exactly the declared files in {FILES_PATH}"
    );
    assert_eq!(
        seen.digests.get("DB_PASSWORD"),
        Some(&digest(&password)),
        "#json: in an env var"
    );
    assert_eq!(
        seen.digests
            .get("AKV_INJECTOR_FILES_PATH")
            .map(String::as_str),
        Some("unset")
    );
    eprintln!(
        "e2e:      {FILES_PATH}: tls.crt, tls.key, app.conf written 0400 for uid 65532 before the app ran"
    );
    ctx.k
        .ok(&["-n", NS_NODE, "delete", "pod", name, "--wait=false"]);
}
