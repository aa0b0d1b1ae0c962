// A local stand-in for the Hugging Face Hub, for end-to-end tests: a node:http server on 127.0.0.1
// with the Hub's URL layout over the files of one folder (the demo model). It answers
// `/api/models/{repo}/revision/{rev}` (and `/api/models/{repo}`) with a listing of the files and
// their sizes, and `/{repo}/resolve/{rev}/{file}` with the bytes (HEAD, Range requests, ETag),
// with CORS headers so that the studio's worker may fetch from another port. Bodies go out in
// pieces with a pause between them, so that a test can watch progress and cancel mid-file; the
// pause can change while the server runs. It records the requests it received.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface StandInOptions {
  /** The repository id served, ORG/NAME. */
  repo: string;
  /** The folder whose top-level files the repository holds. */
  dir: string;
  /** Bytes per body piece. Default 64 KiB. */
  pieceBytes?: number;
  /** Pause after each body piece, in ms. Default 0. */
  pauseMs?: number;
}

export interface StandIn {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Requests as `METHOD path [Range]`. */
  requests: string[];
  setPause(ms: number): void;
  close(): Promise<void>;
}

/** The commit every listing names. */
export const STAND_IN_COMMIT = '0123456789abcdef0123456789abcdef01234567';

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Allow-Headers': 'Range, Authorization, Content-Type',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, X-Linked-Etag, Accept-Ranges',
  'Access-Control-Max-Age': '600',
};

export async function startHubStandIn(options: StandInOptions): Promise<StandIn> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(options.dir)) {
    if (statSync(join(options.dir, name)).isFile()) files.set(name, readFileSync(join(options.dir, name)));
  }
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const etags = new Map([...files].map(([name, b]) => [name, sha(b)]));
  const pieceBytes = options.pieceBytes ?? 64 * 1024;
  let pauseMs = options.pauseMs ?? 0;
  const requests: string[] = [];

  const listing = () =>
    JSON.stringify({
      id: options.repo,
      sha: STAND_IN_COMMIT,
      siblings: [...files].map(([name, b]) =>
        name.endsWith('.safetensors') ? { rfilename: name, size: b.byteLength, lfs: { size: b.byteLength, sha256: etags.get(name) } } : { rfilename: name, size: b.byteLength, blobId: etags.get(name) },
      ),
    });

  const send = async (req: IncomingMessage, res: ServerResponse, body: Buffer, status: number, headers: Record<string, string>) => {
    res.writeHead(status, { ...CORS, ...headers, 'Content-Length': String(body.byteLength) });
    if (req.method === 'HEAD') return void res.end();
    for (let at = 0; at < body.byteLength && !res.destroyed; at += pieceBytes) {
      res.write(body.subarray(at, at + pieceBytes));
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
    res.end();
  };

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(`${req.method} ${path}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, CORS);
      return void res.end();
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, CORS);
      return void res.end();
    }
    const api = `/api/models/${options.repo}`;
    if (path === api || path.startsWith(`${api}/revision/`)) {
      return void send(req, res, Buffer.from(listing()), 200, { 'Content-Type': 'application/json' });
    }
    const resolve = new RegExp(`^/${options.repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/resolve/[^/]+/(.+)$`).exec(path);
    const body = resolve ? files.get(resolve[1]) : undefined;
    if (!resolve || !body) {
      res.writeHead(404, { ...CORS, 'Content-Type': 'application/json', 'X-Error-Code': 'EntryNotFound' });
      return void res.end(JSON.stringify({ error: 'Entry not found' }));
    }
    const headers = { ETag: `"${etags.get(resolve[1])}"`, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!range) return void send(req, res, body, 200, headers);
    const start = Number(range[1]);
    const end = range[2] === '' ? body.byteLength - 1 : Math.min(Number(range[2]), body.byteLength - 1);
    if (start >= body.byteLength || end < start) {
      res.writeHead(416, { ...CORS, 'Content-Range': `bytes */${body.byteLength}` });
      return void res.end();
    }
    return void send(req, res, body.subarray(start, end + 1), 206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${body.byteLength}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setPause(ms) {
      pauseMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
