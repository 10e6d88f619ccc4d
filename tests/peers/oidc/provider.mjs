// An OpenID provider for Valt's oidc tests: the npm package oidc-provider behind a small login form.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/peers/oidc.py) holds everything the run needs:
//   { "port": 0, "issuer": "http://127.0.0.1:PORT",
//     "clients": [{ "client_id", "client_secret", "redirect_uris", "post_logout_redirect_uris",
//                   "token_endpoint_auth_method" }],
//     "users": [{ "username", "password", "name", "email", "groups": [...] }],
//     "jwks": { "keys": [private JWKs] },          // the ID token signing keys; the first one signs
//     "claims_in_id_token": false,                   // true: scope claims go in the ID token too
//     "tls": { "cert", "key" } }                     // optional: HTTPS with these PEM files
//
// Unlike the package's development form, the login form here checks the password: a wrong one
// is refused and asked again; Cancel ends the request with access_denied. Consent is granted on
// the spot (every client here is first-party).
// Key rotation: the tests restart this process with other keys in "jwks" on the same port.
// Prints "listening PORT" on stdout once it accepts connections.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((u) => [u.username, u]));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!doctype html>
<html><head><meta charset="utf-8"><title>Test provider: ${escape(title)}</title></head>
<body><h1>Test provider</h1>
${body}
</body></html>`;

function loginPage(uid, clientId, message) {
  return page('sign in', `<p>Sign in to continue to <b>${escape(clientId)}</b>.</p>
${message ? `<p class="error" role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label>User name <input name="login" autofocus></label>
  <label>Password <input name="password" type="password"></label>
  <button type="submit">Sign in</button>
  <button type="submit" name="cancel" value="1">Cancel</button>
</form>`);
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    post_logout_redirect_uris: [],
    ...c,
  })),
  jwks: config.jwks,
  cookies: { keys: ['valt test provider cookie key'] },
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims: !config.claims_in_id_token,
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // The package's own pages load web fonts from the internet; these load nothing.
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}<p>Sign out of the test provider too?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out of the test provider.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<p class="error" role="alert">${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const user = users.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          preferred_username: user.username,
          name: user.name,
          email: user.email,
          email_verified: true,
          groups: user.groups,
        };
      },
    };
  },
  // First-party clients only: grant whatever openid scopes and claims were asked for, no consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
  ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const send = (status, html) => {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(html);
  };
  if (details.prompt.name !== 'login') {
    // Consent is granted by loadExistingGrant; any other prompt has nothing to ask.
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET') return send(200, loginPage(details.uid, details.params.client_id, ''));
  const form = await readForm(req);
  if (form.get('cancel')) {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted the sign-in',
    }, { mergeWithLastSubmission: false });
  }
  const user = users.get(form.get('login') || '');
  if (!user || user.password !== form.get('password')) {
    return send(200, loginPage(details.uid, details.params.client_id, 'Wrong user name or password.'));
  }
  return provider.interactionFinished(req, res, { login: { accountId: user.username } },
    { mergeWithLastSubmission: false });
}

const handle = provider.callback();
const listener = (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      console.error('interaction failed', err);
      if (!res.headersSent) res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
    return;
  }
  handle(req, res);
};
// With "tls": {"cert", "key"} (PEM file paths) the provider speaks HTTPS only.
const server = config.tls
  ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, listener)
  : http.createServer(listener);
server.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}
