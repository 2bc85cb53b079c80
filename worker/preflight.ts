/**
 * Before the WebSocket handshake: can this host reach the coordinator at all? One line that
 * names the address tried and why it failed — the name does not resolve (DNS), nothing listens
 * there (refused), nothing answers (timeout: a firewall, a wrong interface), no route.
 */
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';

export interface Reachability {
  ok: boolean;
  /** "10.0.0.5:7070" — what was tried (the resolved address, when the name resolved). */
  tried: string;
  /** Why not, for one line; '' when ok. */
  why: string;
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing listens there: is the coordinator up, on that port and interface?)',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EADDRNOTAVAIL: 'address not available on this host',
};

export async function preflight(url: string, timeoutMs = 5000): Promise<Reachability> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port || (u.protocol === 'wss:' ? 443 : 80));
  let address: string;
  try {
    address = (await lookup(host)).address;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    return { ok: false, tried: `${host}:${port}`, why: `DNS: cannot resolve ${host} (${code})` };
  }
  const tried = `${address.includes(':') ? `[${address}]` : address}:${port}${address !== host ? ` (${host})` : ''}`;
  return new Promise<Reachability>((resolve) => {
    const sock = connect({ host: address, port });
    const done = (why: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok: why === '', tried, why });
    };
    const timer = setTimeout(
      () => done(`timeout: no answer within ${timeoutMs / 1000} s (a firewall, or the wrong address or interface?)`),
      timeoutMs,
    );
    sock.once('connect', () => done(''));
    sock.once('error', (e: NodeJS.ErrnoException) =>
      done(REASONS[e.code ?? ''] ?? `${e.code ?? 'error'}: ${e.message}`),
    );
  });
}
