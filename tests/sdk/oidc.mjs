// A small OpenID Connect provider on loopback for the OAuth2 scenarios: discovery, authorize
// (code + PKCE S256), token and userinfo (plus GitHub's `/user/emails` shape at
// `/userinfo/emails`), nothing else, and no outside network. The test picks
// who "signs in" at the provider by setting `nextUser` before following an authorization URL.
// Not a test file itself.
import http from 'node:http';
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = () => b64url(crypto.randomBytes(24));

export async function startOidc({ clientId, clientSecret }) {
  const codes = new Map();
  const tokens = new Map();
  const idp = { nextUser: null, issuer: '', tokenRequests: 0 };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, idp.issuer);
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return send(200, {
        issuer: idp.issuer,
        authorization_endpoint: `${idp.issuer}/authorize`,
        token_endpoint: `${idp.issuer}/token`,
        userinfo_endpoint: `${idp.issuer}/userinfo`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
      });
    }
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== clientId || q.get('response_type') !== 'code') return send(400, { error: 'invalid_request' });
      if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) return send(400, { error: 'pkce_required' });
      if (!idp.nextUser) return send(400, { error: 'nobody_signed_in' });
      const code = random();
      codes.set(code, { user: idp.nextUser, challenge: q.get('code_challenge'), redirect: q.get('redirect_uri') });
      const to = new URL(q.get('redirect_uri'));
      to.searchParams.set('code', code);
      to.searchParams.set('state', q.get('state'));
      return send(302, undefined, { location: to.toString() });
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        idp.tokenRequests += 1;
        const f = new URLSearchParams(raw);
        if (f.get('client_id') !== clientId || f.get('client_secret') !== clientSecret) return send(401, { error: 'invalid_client' });
        const entry = codes.get(f.get('code'));
        codes.delete(f.get('code'));
        if (!entry || f.get('grant_type') !== 'authorization_code') return send(400, { error: 'invalid_grant' });
        if (entry.redirect !== f.get('redirect_uri')) return send(400, { error: 'invalid_grant', error_description: 'redirect_uri' });
        const challenge = b64url(crypto.createHash('sha256').update(f.get('code_verifier') ?? '').digest());
        if (challenge !== entry.challenge) return send(400, { error: 'invalid_grant', error_description: 'pkce' });
        const access = random();
        tokens.set(access, entry.user);
        return send(200, { access_token: access, token_type: 'Bearer', expires_in: 3600, refresh_token: `r-${random()}` });
      });
      return undefined;
    }
    if (url.pathname === '/userinfo' || url.pathname === '/userinfo/emails') {
      const user = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      if (!user) return send(401, { error: 'invalid_token' });
      // A GitHub-shaped user keeps its address list (with `verified` flags) under `emails`,
      // served where GitHub serves `/user/emails` relative to `/user`.
      const { emails, ...profile } = user;
      if (url.pathname === '/userinfo/emails') return emails ? send(200, emails) : send(404, { message: 'Not Found' });
      return send(200, profile);
    }
    return send(404, { error: 'not_found' });
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  idp.issuer = `http://127.0.0.1:${server.address().port}`;
  // Connections vaultbase's workers keep open to the provider must not hold the test file's
  // process (and the whole run) until they time out.
  idp.stop = () => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
  });
  return idp;
}
