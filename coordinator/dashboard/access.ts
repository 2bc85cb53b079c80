/**
 * Who may see the dashboard. On a loopback listener anyone on this machine may (as workers may
 * join without a token there). Beyond loopback the page asks for the job token in a login form
 * (POST body, never a URL) and answers a right one with an HttpOnly session cookie: issue time,
 * a nonce and a MAC of both under the token (shared/wire/auth.ts). Nothing is stored server-side; a
 * new token (a new coordinator) invalidates every cookie.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dashboardSessionMac, isLoopback, newNonce, proofsEqual } from '../../shared/wire/auth.js';

export const COOKIE = 'dptrain_session';
/** A session lasts this long; then the form asks again. */
export const SESSION_MS = 12 * 3600_000;
/** A wrong token is answered after this delay, to slow guessing. */
export const WRONG_TOKEN_DELAY_MS = 400;
/** Wrong tokens one address may try per window; past it, logins from there wait for the window. */
export const WRONG_TOKENS_PER_WINDOW = 10;
export const WRONG_TOKEN_WINDOW_MS = 60_000;
/** Login bodies larger than this are refused (a token is 43 characters). */
const MAX_BODY = 4096;

export interface AccessOptions {
  /** Listening beyond loopback: the job token is required. */
  requireLogin: boolean;
  /** The job token; with requireLogin and no token nobody gets in. */
  token: string | null;
  /** Served over TLS: the cookie is marked Secure. */
  secure: boolean;
}

/**
 * Wrong tokens per remote address, in fixed windows. The delay above slows one guesser; this
 * bounds guessers that send many forms at once. Per address, so a guesser elsewhere cannot lock
 * the user out; the map forgets an address when its window ends.
 */
export class WrongTokenLimit {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly perWindow = WRONG_TOKENS_PER_WINDOW,
    private readonly windowMs = WRONG_TOKEN_WINDOW_MS,
  ) {}

  /** May this address try a token now? */
  allows(address: string, now = Date.now()): boolean {
    const w = this.windows.get(address);
    if (w && now - w.start >= this.windowMs) this.windows.delete(address);
    return (this.windows.get(address)?.count ?? 0) < this.perWindow;
  }

  /** Count a wrong token from this address. */
  wrong(address: string, now = Date.now()): void {
    for (const [a, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(a);
    const w = this.windows.get(address) ?? { start: now, count: 0 };
    w.count++;
    this.windows.set(address, w);
  }
}

export class Access {
  private readonly limit = new WrongTokenLimit();

  constructor(private readonly o: AccessOptions) {}

  get requiresLogin(): boolean {
    return this.o.requireLogin;
  }

  /**
   * May this request see the run? On loopback the Host header must name this machine too: a
   * web page elsewhere that re-points its own domain at 127.0.0.1 (DNS rebinding) is refused.
   */
  allowed(req: IncomingMessage, now = Date.now()): boolean {
    if (!this.o.requireLogin) return loopbackHost(req);
    if (this.o.token === null) return false;
    const value = readCookie(req, COOKIE);
    if (!value) return false;
    const [issuedText, nonce, mac] = value.split('.');
    const issued = Number(issuedText);
    if (!nonce || !mac || !Number.isInteger(issued) || now - issued > SESSION_MS || issued > now + 60_000) return false;
    return proofsEqual(mac, dashboardSessionMac(this.o.token, issued, nonce));
  }

  /** Check a token typed into the form; on success, the Set-Cookie header value. */
  login(typed: string, now = Date.now()): string | null {
    if (this.o.token === null || !proofsEqual(typed.trim(), this.o.token)) return null;
    const nonce = newNonce();
    const value = `${now}.${nonce}.${dashboardSessionMac(this.o.token, now, nonce)}`;
    const attrs = [`${COOKIE}=${value}`, 'HttpOnly', 'SameSite=Strict', 'Path=/', `Max-Age=${SESSION_MS / 1000}`];
    if (this.o.secure) attrs.push('Secure');
    return attrs.join('; ');
  }

  /** POST /login: read the form, set the cookie and go to the page, or show the form again. */
  handleLogin(req: IncomingMessage, res: ServerResponse, form: (error: string | null) => string): void {
    let body = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > MAX_BODY) {
        tooLarge = true;
        req.destroy();
      }
    });
    req.on('end', () => {
      if (tooLarge) return;
      const address = req.socket.remoteAddress ?? '';
      if (!this.limit.allows(address)) {
        const wait = Math.ceil(WRONG_TOKEN_WINDOW_MS / 1000);
        res.writeHead(429, { ...htmlHeaders(), 'retry-after': String(wait) });
        res.end(form(`Too many wrong tokens from this address; try again in ${wait} s.`));
        return;
      }
      const cookie = this.login(new URLSearchParams(body).get('token') ?? '');
      if (cookie) {
        res.writeHead(303, { location: '/', 'set-cookie': cookie, 'cache-control': 'no-store' }).end();
        return;
      }
      this.limit.wrong(address);
      setTimeout(() => {
        res.writeHead(401, htmlHeaders()).end(form('That is not the job token of this run.'));
      }, WRONG_TOKEN_DELAY_MS).unref();
    });
  }
}

/**
 * "127.0.0.1:7070" → "127.0.0.1"; "[::1]:7070" → "::1"; "LOCALHOST.:7070" → "localhost" (host
 * names are case-insensitive, and a trailing dot names the same host).
 */
function hostOf(header: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  return (m ? m[1] : header.replace(/:\d+$/, '')).toLowerCase().replace(/\.$/, '');
}

/** Does the request's Host header name this machine (the loopback check against DNS rebinding)? */
export function loopbackHost(req: IncomingMessage): boolean {
  return isLoopback(hostOf(req.headers.host ?? ''));
}

function readCookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Headers of every page: no framing, no inline scripts, nothing fetched from elsewhere. */
export function htmlHeaders(): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy':
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; " +
      "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  };
}
