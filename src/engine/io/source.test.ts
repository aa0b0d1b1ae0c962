import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, FileReadError, type WhetstoneError } from '../errors.ts';
import { type ByteSource, blobSource, memorySource, openUrlSource, parseContentRangeTotal, readText } from './source.ts';
import { openFileSource } from './source-node.ts';

const bytes = new Uint8Array(1000).map((_, i) => (i * 7 + 3) & 0xff);

async function expectReadError(p: Promise<unknown>, pattern: RegExp, name: string): Promise<WhetstoneError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(FileReadError);
  expect((e as WhetstoneError).file).toBe(name);
  expect((e as WhetstoneError).message).toMatch(pattern);
  return e as WhetstoneError;
}

/** The checks every source must pass. */
async function checkSource(s: ByteSource, name: string) {
  expect(s.name).toBe(name);
  expect(s.size).toBe(1000);
  expect([...(await s.read(0, 5))]).toEqual([...bytes.subarray(0, 5)]);
  expect([...(await s.read(990, 10))]).toEqual([...bytes.subarray(990)]);
  expect((await s.read(1000, 0)).byteLength).toBe(0);
  const a = await s.read(100, 300);
  expect([...a]).toEqual([...bytes.subarray(100, 400)]);
  a[0] ^= 0xff; // the caller owns the result
  expect((await s.read(100, 1))[0]).toBe(bytes[100]);
  const e = await expectReadError(s.read(995, 10), /10 bytes at offset 995 runs past the end of the 1000-byte file/, name);
  expect(e.byteOffset).toBe(995);
  await expectReadError(s.read(-1, 2), /non-negative integers/, name);
  await expectReadError(s.read(1.5, 2), /non-negative integers/, name);
}

describe('memorySource and blobSource', () => {
  it('read bounded ranges', async () => {
    await checkSource(memorySource(bytes, 'mem'), 'mem');
    await checkSource(blobSource(new Blob([bytes])), 'blob');
    await checkSource(blobSource(new File([bytes], 'model.safetensors')), 'model.safetensors');
  });

  it('readText bounds the size and requires UTF-8', async () => {
    expect(await readText(memorySource(new TextEncoder().encode('{"a":"é"}'), 'c.json'), 100)).toBe('{"a":"é"}');
    await expectReadError(readText(memorySource(bytes, 'big.json'), 999), /1000 bytes; at most 999/, 'big.json');
    await expectReadError(readText(memorySource(new Uint8Array([0x7b, 0xff]), 'bad.json'), 100), /UTF-8/, 'bad.json');
  });
});

describe('openFileSource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'whetstone-src-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads bounded ranges from a file and closes', async () => {
    const path = join(dir, 'a.bin');
    await writeFile(path, bytes);
    const s = await openFileSource(path);
    await checkSource(s, path);
    await s.close?.();
    await expectReadError(s.read(0, 1), /after it was closed/, path);
  });

  it('a missing file and a file that shrinks while open give FileReadError', async () => {
    await expectReadError(openFileSource(join(dir, 'nope.bin')), /does not exist/, join(dir, 'nope.bin'));
    await expectReadError(openFileSource(dir), /not a regular file|could not be opened/, dir);
    const path = join(dir, 'b.bin');
    await writeFile(path, bytes);
    const s = await openFileSource(path, 'b.bin');
    await truncate(path, 500);
    const e = await expectReadError(s.read(400, 200), /ended after 100/, 'b.bin');
    expect(e.byteOffset).toBe(500);
    await s.close?.();
  });
});

type Mode = 'ok' | 'ignore-range' | 'short' | 'long' | 'wrong-start' | '404' | '403' | 'no-content-range';

describe('openUrlSource', () => {
  let server: Server;
  let base: string;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const mode = (req.url ?? '').slice(1) as Mode;
      const range = req.headers.range ?? '';
      seen.push(`${mode} ${range}`);
      if (mode === '404' || mode === '403') {
        res.writeHead(Number(mode)).end();
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(range);
      if (!m || mode === 'ignore-range') {
        res.writeHead(200, { 'content-length': bytes.byteLength }).end(bytes);
        return;
      }
      let a = Number(m[1]);
      const b = Math.min(Number(m[2]), bytes.byteLength - 1);
      if (mode === 'wrong-start') a = Math.max(0, a - 1);
      let body = bytes.subarray(a, b + 1);
      if (mode === 'short' && a > 0) body = body.subarray(1);
      if (mode === 'long' && a > 0) body = bytes.subarray(a, b + 3);
      const headers: Record<string, string> = { 'content-length': String(body.byteLength) };
      if (mode !== 'no-content-range') headers['content-range'] = `bytes ${a}-${a + body.byteLength - 1}/${bytes.byteLength}`;
      res.writeHead(206, headers).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('finds the size with one Range request and reads bounded ranges', async () => {
    seen.length = 0;
    const s = await openUrlSource(`${base}ok`);
    expect(seen).toEqual(['ok bytes=0-0']);
    await checkSource(s, `${base}ok`);
    expect(seen).toContain('ok bytes=100-399');
    expect(seen.some((r) => r.includes('995'))).toBe(false); // out-of-range reads never reach the server
  });

  it('uses a known size without probing, and passes headers', async () => {
    const calls: RequestInit[] = [];
    const s = await openUrlSource(`${base}ok`, {
      size: 1000,
      headers: { Authorization: 'Bearer t' },
      fetch: (url, init) => {
        calls.push(init ?? {});
        return fetch(url, init);
      },
    });
    expect(calls).toHaveLength(0);
    expect([...(await s.read(10, 3))]).toEqual([...bytes.subarray(10, 13)]);
    expect(calls[0].headers).toEqual({ Authorization: 'Bearer t', Range: 'bytes=10-12' });
  });

  it('refuses servers that ignore Range, send the wrong length or the wrong bytes', async () => {
    await expectReadError(openUrlSource(`${base}ignore-range`), /ignored the Range request/, `${base}ignore-range`);
    const short = await openUrlSource(`${base}short`);
    await expectReadError(short.read(10, 20), /Expected 20 bytes at offset 10, got 19/, `${base}short`);
    const long = await openUrlSource(`${base}long`);
    await expectReadError(long.read(10, 20), /Expected 20 bytes at offset 10, the server sent more/, `${base}long`);
    const wrong = await openUrlSource(`${base}wrong-start`, { size: 1000 });
    await expectReadError(wrong.read(10, 20), /Asked for bytes from offset 10, the server sent bytes from offset 9/, `${base}wrong-start`);
    await expectReadError(openUrlSource(`${base}no-content-range`), /without a usable Content-Range/, `${base}no-content-range`);
  });

  it('turns HTTP and network failures into FileReadError', async () => {
    await expectReadError(openUrlSource(`${base}404`), /HTTP 404/, `${base}404`);
    const e = await expectReadError(openUrlSource(`${base}403`), /HTTP 403/, `${base}403`);
    expect(e.hint).toMatch(/access token/);
    await expectReadError(openUrlSource('http://127.0.0.1:1/x'), /request for bytes 0-0 failed/, 'http://127.0.0.1:1/x');
  });

  it('stops with CancelledError when its signal aborts', async () => {
    const ac = new AbortController();
    const s = await openUrlSource(`${base}ok`, { signal: ac.signal });
    ac.abort();
    await expect(s.read(0, 10)).rejects.toBeInstanceOf(CancelledError);
  });

  it('parses Content-Range totals', () => {
    expect(parseContentRangeTotal('bytes 0-0/1234')).toBe(1234);
    expect(parseContentRangeTotal('bytes */0')).toBe(0);
    expect(parseContentRangeTotal('bytes 0-0/*')).toBeNull();
    expect(parseContentRangeTotal(null)).toBeNull();
  });
});
