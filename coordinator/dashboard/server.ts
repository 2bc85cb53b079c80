/**
 * The dashboard on the coordinator's port: GET / (the page), /assets/* (uPlot and the page's
 * code, from the package: no internet needed), /events (server-sent events of the run), and,
 * beyond loopback, the login form (POST /login). Read-only: nothing here changes the run, and
 * every other method is refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Access, htmlHeaders, type AccessOptions } from './access.js';
import type { LiveRun } from './live.js';
import { ASSETS, asset, livePage, loginPage } from './page.js';

export class Dashboard {
  private readonly access: Access;

  constructor(
    readonly run: LiveRun,
    access: AccessOptions,
    private readonly title: string,
  ) {
    this.access = new Access(access);
  }

  get requiresLogin(): boolean {
    return this.access.requiresLogin;
  }

  /** Serve a dashboard request; false when the path is not the dashboard's (the caller 404s). */
  handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = (req.url ?? '/').split('?')[0];
    const isAsset = path.startsWith('/assets/');
    if (path !== '/' && path !== '/events' && path !== '/login' && !isAsset) return false;
    if (path === '/login' && req.method === 'POST') {
      if (!this.access.requiresLogin) res.writeHead(303, { location: '/' }).end();
      else this.access.handleLogin(req, res, loginPage);
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('the dashboard is read-only\n');
      return true;
    }
    // The login form needs its stylesheet; the library and code carry no data of the run.
    if (isAsset) return this.serveAsset(path.slice('/assets/'.length), res);
    if (!this.access.allowed(req)) {
      if (!this.access.requiresLogin)
        res
          .writeHead(403, { 'content-type': 'text/plain' })
          .end('on loopback the dashboard answers to 127.0.0.1, localhost or [::1] only\n');
      else if (path === '/events') res.writeHead(401, { 'content-type': 'text/plain' }).end('sign in at /\n');
      else res.writeHead(401, htmlHeaders()).end(loginPage(null));
      return true;
    }
    if (path === '/login') res.writeHead(303, { location: '/' }).end();
    else if (path === '/events' && req.method === 'HEAD')
      res.writeHead(200, { 'content-type': 'text/event-stream' }).end();
    else if (path === '/events') {
      if (!this.run.subscribe(res))
        res
          .writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' })
          .end('too many dashboard pages open\n');
    } else res.writeHead(200, htmlHeaders()).end(req.method === 'HEAD' ? undefined : livePage(this.title));
    return true;
  };

  private serveAsset(name: string, res: ServerResponse): boolean {
    const a = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!a) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such asset\n');
      return true;
    }
    res
      .writeHead(200, {
        'content-type': `${a.type}; charset=utf-8`,
        'cache-control': 'max-age=3600',
        'x-content-type-options': 'nosniff',
      })
      .end(asset(name));
    return true;
  }
}
