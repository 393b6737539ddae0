// Entra ID's two discovery documents, for in-pod binaries built on MSAL (secret-init's
// Azure provider: azidentity -> MSAL Go). Used by scripts/lib/bench-inpod.mjs only.
//
// MSAL asks, before its first token request, https://login.microsoftonline.com/common/
// discovery/instance (instance discovery) and then the tenant's OpenID configuration; it
// takes the token endpoint from the latter. This server answers both, in the documented
// shapes ("Microsoft identity platform and OpenID Connect protocol"; the instance discovery
// answer's tenant_discovery_endpoint/metadata fields), and names as token endpoint the Key
// Vault test bed's own (TOKEN_URL: the harness through the benchmark's delay proxy). So a
// peer gets its token from the same endpoint, by the same client assertion, as akv-env.
//
//   node bench-entra-discovery.mjs CERT KEY TOKEN_BASE
// TOKEN_BASE: e.g. https://localhost:PORT (the tenant and /oauth2/v2.0/token are appended).
// Listens on 127.0.0.1, a free port; prints {"port":PORT} and counts requests per path
// (GET /stats). Exits when stdin closes.
import { readFileSync } from 'node:fs';
import https from 'node:https';

const [certFile, keyFile, tokenBase] = process.argv.slice(2);
const host = 'login.microsoftonline.com';
const counts = {};
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const url = new URL(req.url, `https://${host}`);
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === '/stats') return send(200, counts);
  const key = url.pathname.replace(/^\/[0-9a-f-]{36}\//, '/{tenant}/');
  counts[key] = (counts[key] ?? 0) + 1;
  if (url.pathname === '/common/discovery/instance') {
    const authz = url.searchParams.get('authorization_endpoint') ?? '';
    const tenant = /^https:\/\/[^/]+\/([^/]+)\//.exec(authz)?.[1] ?? 'common';
    return send(200, {
      tenant_discovery_endpoint: `https://${host}/${tenant}/v2.0/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: host, preferred_cache: 'login.windows.net', aliases: [host, 'login.windows.net', 'login.microsoft.com', 'sts.windows.net'] }],
    });
  }
  const m = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
  if (m) {
    const tenant = m[1];
    return send(200, {
      token_endpoint: `${tokenBase}/${tenant}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `https://${host}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `https://${host}/${tenant}/v2.0`,
      authorization_endpoint: `https://${host}/${tenant}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `https://${host}/${tenant}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `https://${host}/${tenant}/oauth2/v2.0/logout`,
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
    });
  }
  return send(404, { error: 'not_found', error_description: `no such discovery document: ${url.pathname}` });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
