// An external OpenID provider for Passerelle's tests: the oidc-provider
// package (a certified implementation, not Passerelle's code) on loopback.
//
// Environment: REDIRECT_URI and POST_LOGOUT_URI of the web client
// "passerelle" (secret CLIENT_SECRET). It prints one JSON line with its
// issuer once it listens, and stops when its standard input closes.
//
// Accounts: any user name from USERS (comma-separated) with the password
// equal to the user name. Clients: "passerelle" (authorization code with
// PKCE, and client credentials) and "chu-demo-dpi" (client credentials).
// Access tokens are JWTs for the resource "urn:passerelle:api", audience
// "passerelle"; the resource "urn:other:api" gives tokens for another
// audience.
import http from 'node:http';
import { once } from 'node:events';
import Provider from 'oidc-provider';

const users = new Set((process.env.USERS || '').split(',').filter(Boolean));
const server = http.createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;

const audiences = { 'urn:passerelle:api': 'passerelle', 'urn:other:api': 'other-api' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'passerelle',
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
      grant_types: ['authorization_code', 'client_credentials'],
      response_types: ['code'],
    },
    {
      client_id: 'chu-demo-dpi',
      client_secret: 'chu-demo-dpi',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id, preferred_username: id }; } };
  },
  claims: { openid: ['sub'], profile: ['preferred_username'] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'api'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf || 'urn:passerelle:api',
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (!audiences[resource]) throw new Error('unknown resource');
        return { scope: 'api', audience: audiences[resource], accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  async extraTokenClaims(_ctx, token) {
    // A person's access token carries the practitioner claim; a client's
    // does not, which is what makes it a system token.
    return token.accountId ? { preferred_username: token.accountId } : undefined;
  },
  async loadExistingGrant(ctx) {
    // Consent is implied: Passerelle is the CPTS's own application.
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile api');
    grant.addOIDCClaims(['preferred_username']);
    grant.addResourceScope('urn:passerelle:api', 'api');
    await grant.save();
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><body>${body}</body></html>`);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    page(res, 200, `<form method="post" action="/interaction/${details.uid}">` +
      '<input name="username"><input name="password" type="password"><button>Se connecter</button></form>');
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const form = new URLSearchParams(body);
  const login = form.get('username');
  if (!users.has(login) || form.get('password') !== login) {
    page(res, 401, 'Identifiant ou mot de passe incorrect');
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => page(res, 500, String(err)));
    return;
  }
  callback(req, res);
});

process.stdout.write(JSON.stringify({ issuer }) + '\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
