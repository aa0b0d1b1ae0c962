import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CancelledError, DownloadError, HubAuthError, HubNotFoundError, HubRefError, MissingFileError, UnsafeWeightsError } from '../errors.ts';
import { expectedWeights, parseModelConfig } from '../model/config.ts';
import { Rng } from '../random.ts';
import type { BlobStore } from '../store/store.ts';
import { MemoryBlobStore } from '../store/store-memory.ts';
import { openNodeStore } from '../store/store-node.ts';
import { type DownloadOptions, type DownloadProgress, downloadModel, downloadRecordKey, formatHubRef, hubStorePrefix, openCachedModel, parseHubRef, readDownloadRecord } from './hub.ts';
import { openModelFolder } from './model-folder.ts';
import { openModelDirectory } from './model-folder-node.ts';
import { type TensorToWrite, writeSafetensors } from './safetensors.ts';

// ---- a tiny model, as a Hub repository would hold it -------------------------------------------

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 16,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

function tensors(): TensorToWrite[] {
  const rng = new Rng(3);
  return expectedWeights(parseModelConfig(CONFIG)).map((w) => ({
    name: w.name,
    dtype: 'F32' as const,
    shape: w.shape,
    data: rng.fill(w.shape.reduce((a, d) => a * d, 1)),
  }));
}

const COMMON: Record<string, Uint8Array> = {
  'config.json': enc(CONFIG),
  'generation_config.json': enc({ bos_token_id: 1, eos_token_id: 2 }),
  'tokenizer.json': enc({ version: '1.0', model: { type: 'WordLevel', vocab: { '<unk>': 0, a: 1 }, unk_token: '<unk>' } }),
  'tokenizer_config.json': enc({ bos_token: '<s>', eos_token: '</s>', chat_template: '{{ messages }}' }),
  'README.md': enc('# tiny\n'),
  '.gitattributes': enc('*.safetensors filter=lfs\n'),
};

function singleRepo(): Record<string, Uint8Array> {
  return { ...COMMON, 'model.safetensors': writeSafetensors(tensors()) };
}

function shardedRepo(): Record<string, Uint8Array> {
  const all = tensors();
  const half = Math.ceil(all.length / 2);
  const shards = [all.slice(0, half), all.slice(half)];
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  shards.forEach((ts, i) => ts.forEach((t) => (weightMap[t.name] = names[i])));
  return {
    ...COMMON,
    [names[0]]: writeSafetensors(shards[0]),
    [names[1]]: writeSafetensors(shards[1]),
    'model.safetensors.index.json': enc({ metadata: { total_size: 0 }, weight_map: weightMap }),
    'pytorch_model.bin': enc('pickled bytes that must never be fetched'),
  };
}

// ---- a local server with the Hub's URL layout ------------------------------------------------------

interface Behavior {
  /** 'none': the listing API answers 404; 'no-sizes': the listing has no sizes. */
  listing?: 'ok' | 'none' | 'no-sizes';
  /** The resolve URLs need `Authorization: Bearer <token>`. */
  token?: string;
  ignoreRange?: boolean;
  /** HEAD answers 405. */
  noHead?: boolean;
  /** The next `times` GETs of `file` close the connection after `after` body bytes. */
  cut?: { file: string; after: number; times: number };
  /** Sizes the listing reports instead of the real ones. */
  listedSize?: Record<string, number>;
  /** Bytes served instead of the real file, without a Content-Length. */
  serve?: Record<string, Uint8Array>;
  /** Files that are listed but answer 404. */
  missing?: string[];
  /** Sends bodies in pieces of `bytes`, `delayMs` apart. */
  chunk?: { bytes: number; delayMs: number };
  /** Called after each piece of a body is written. */
  onSent?: (file: string, sent: number) => void;
}

interface Seen {
  method: string;
  path: string;
  range?: string;
  auth?: string;
  status: number;
}

const SHA = 'a'.repeat(40);
const repos = new Map<string, Record<string, Uint8Array>>();
let behavior: Behavior = {};
let seen: Seen[] = [];
let server: Server;
let endpoint: string;
let tmp: string;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const etagOf = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 20);

function writePiece(res: ServerResponse, piece: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    res.write(piece, () => resolve());
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const parts = url.pathname.split('/').map(decodeURIComponent);
  const record: Seen = { method: req.method ?? '', path: url.pathname, range: req.headers.range, auth: req.headers.authorization, status: 0 };
  seen.push(record);
  const reply = (status: number, headers: Record<string, string | number> = {}, body?: Uint8Array | string) => {
    record.status = status;
    res.writeHead(status, headers);
    res.end(body);
  };
  res.on('error', () => undefined);

  if (parts[1] === 'api' && parts[2] === 'models') {
    // /api/models/{org}/{name}[/revision/{rev}]
    const files = repos.get(`${parts[3]}/${parts[4]}`);
    const rev = parts[5] === 'revision' ? parts[6] : 'main';
    if (behavior.listing === 'none' || !files || (rev !== 'main' && rev !== SHA)) return reply(404, {}, 'Not found');
    const siblings = Object.entries(files).map(([rfilename, data]) =>
      behavior.listing === 'no-sizes' ? { rfilename } : { rfilename, size: behavior.listedSize?.[rfilename] ?? data.byteLength, blobId: etagOf(data) },
    );
    return reply(200, { 'content-type': 'application/json' }, JSON.stringify({ id: `${parts[3]}/${parts[4]}`, sha: SHA, siblings }));
  }
  if (parts[3] !== 'resolve' || parts.length !== 6) return reply(404);
  // /{org}/{name}/resolve/{rev}/{file}
  const files = repos.get(`${parts[1]}/${parts[2]}`);
  const rev = parts[4];
  const file = parts[5];
  if (behavior.token !== undefined && req.headers.authorization !== `Bearer ${behavior.token}`) {
    return reply(req.headers.authorization ? 403 : 401, {}, 'Access to this model is restricted.');
  }
  const real = files?.[file];
  if (!real || (rev !== 'main' && rev !== SHA) || behavior.missing?.includes(file)) return reply(404, {}, 'Entry not found');
  if (req.method === 'HEAD' && behavior.noHead) return reply(405);
  const data = behavior.serve?.[file] ?? real;
  const headers: Record<string, string | number> = { etag: `"${etagOf(data)}"`, 'accept-ranges': 'bytes' };
  let start = 0;
  let status = 200;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m && !behavior.ignoreRange) {
    start = Number(m[1]);
    const end = m[2] === '' ? data.byteLength - 1 : Math.min(Number(m[2]), data.byteLength - 1);
    if (start >= data.byteLength) return reply(416, { 'content-range': `bytes */${data.byteLength}` });
    headers['content-range'] = `bytes ${start}-${end}/${data.byteLength}`;
    status = 206;
    const body = data.subarray(start, end + 1);
    return send(req, res, record, status, headers, body, file);
  }
  return send(req, res, record, status, headers, data, file);
}

async function send(req: IncomingMessage, res: ServerResponse, record: Seen, status: number, headers: Record<string, string | number>, body: Uint8Array, file: string) {
  record.status = status;
  if (!behavior.serve?.[file]) headers['content-length'] = body.byteLength;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') return void res.end();
  const cut = behavior.cut && behavior.cut.file === file && behavior.cut.times > 0 ? behavior.cut : null;
  if (cut) cut.times--;
  const limit = cut ? Math.min(cut.after, body.byteLength) : body.byteLength;
  const step = behavior.chunk?.bytes ?? limit;
  for (let sent = 0; sent < limit && !res.destroyed; ) {
    const piece = body.subarray(sent, Math.min(limit, sent + Math.max(1, step)));
    await writePiece(res, piece);
    sent += piece.byteLength;
    behavior.onSent?.(file, sent);
    if (behavior.chunk) await delay(behavior.chunk.delayMs);
  }
  if (cut) {
    await delay(60); // the client reads the bytes sent before the connection drops
    res.socket?.destroy();
    return;
  }
  res.end();
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'whetstone-hub-'));
  server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  behavior = {};
  seen = [];
  repos.clear();
  repos.set('test/tiny', singleRepo());
  repos.set('test/sharded', shardedRepo());
  repos.set('test/pickles', { 'config.json': enc(CONFIG), 'pytorch_model.bin': enc('pickle') });
});

function download(ref: string, store: BlobStore, extra: Partial<DownloadOptions> = {}) {
  return downloadModel(ref, { store, endpoint, retries: 0, retryDelayMs: 0, ...extra });
}

async function stored(store: BlobStore, ref: string, file: string): Promise<Uint8Array> {
  const src = await store.read(hubStorePrefix(parseHubRef(ref)) + file);
  try {
    return await src.read(0, src.size);
  } finally {
    await src.close?.();
  }
}

const gets = (file: string) => seen.filter((s) => s.method === 'GET' && s.path.endsWith(`/resolve/${SHA}/${file}`));
const KEY = 'models/test/tiny@main/model.safetensors';

// ---- tests ------------------------------------------------------------------------------------------

describe('parseHubRef', () => {
  it('reads repository and revision, defaulting to main', () => {
    expect(parseHubRef('hub:HuggingFaceTB/SmolLM2-135M')).toEqual({ repo: 'HuggingFaceTB/SmolLM2-135M', revision: 'main' });
    expect(parseHubRef(' hub:org/name.v2@v1.0 ')).toEqual({ repo: 'org/name.v2', revision: 'v1.0' });
    expect(parseHubRef('hub:gpt2')).toEqual({ repo: 'gpt2', revision: 'main' });
    expect(parseHubRef('hub:org/name@refs/pr/1')).toEqual({ repo: 'org/name', revision: 'refs/pr/1' });
    expect(formatHubRef(parseHubRef('hub:a/b'))).toBe('hub:a/b@main');
    expect(hubStorePrefix(parseHubRef('hub:org/name@refs/pr/1'))).toBe('models/org/name@refs%2Fpr%2F1/');
  });

  it('rejects malformed references with a typed error', () => {
    const bad = ['org/name', 'hub:', 'hub:org/', 'hub:/name', 'hub:a/b/c', 'hub:org/na me', 'hub:org/a--b', 'hub:org/-x', 'hub:org/x.',
      'hub:org/name@', 'hub:org/name@a..b', 'hub:org/name@a b', 'hub:org/name@x@y', 'hub:org/name@/x', `hub:org/${'x'.repeat(100)}`];
    for (const s of bad) {
      expect(() => parseHubRef(s), s).toThrow(HubRefError);
    }
    expect(() => parseHubRef('org/name')).toThrow(/must start with "hub:"/);
  });
});

describe('downloadModel', () => {
  it('downloads the files of a model folder, which openModelFolder then opens', async () => {
    const store = new MemoryBlobStore();
    const files = await download('hub:test/tiny', store);
    expect(files.list()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(files.commit).toBe(SHA);
    expect(files.name).toBe('hub:test/tiny@main');
    for (const f of files.list()) expect(await stored(store, 'hub:test/tiny', f)).toEqual(repos.get('test/tiny')?.[f]);
    const folder = await openModelFolder(files);
    expect(folder.rawConfig.num_hidden_layers).toBe(2);
    expect(folder.tokenizerFiles).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    // Files come from the listed commit; nothing else is requested.
    expect(seen.filter((s) => s.path.includes('/resolve/')).every((s) => s.path.includes(`/resolve/${SHA}/`))).toBe(true);
    expect(seen.some((s) => /README|gitattributes/.test(s.path))).toBe(false);

    // A second download finds everything in the store: only the listing is requested.
    seen = [];
    const again = await download('hub:test/tiny', store);
    expect(again.files).toEqual(files.files);
    expect(seen.map((s) => s.path)).toEqual(['/api/models/test/tiny/revision/main']);
  });

  it('opens a finished download without the network: offline on request, or when the Hub is unreachable', async () => {
    const store = new MemoryBlobStore();
    const ref = parseHubRef('hub:test/tiny');
    expect(await openCachedModel(store, ref)).toBeNull();
    const offlineEmpty = await download('hub:test/tiny', store, { offline: true }).catch((e) => e);
    expect(offlineEmpty).toBeInstanceOf(MissingFileError);
    expect(offlineEmpty.message).toMatch(/test\/tiny@main is not completely downloaded.*offline/);

    const first = await download('hub:test/tiny', store);
    expect(first.fromCache).toBe(false);
    const record = await readDownloadRecord(store, ref);
    expect(record).toMatchObject({ repo: 'test/tiny', revision: 'main', commit: SHA, files: first.files });

    seen = [];
    const offline = await download('hub:test/tiny', store, { offline: true });
    expect(seen).toEqual([]);
    expect(offline).toMatchObject({ fromCache: true, commit: SHA, files: first.files });
    expect((await openModelFolder(offline)).rawConfig.num_hidden_layers).toBe(2);

    // A refused connection (nothing listens on port 1) falls back to the same files.
    const events: DownloadProgress[] = [];
    const unreachable = await downloadModel('hub:test/tiny', { store, endpoint: 'http://127.0.0.1:1', retries: 0, onProgress: (p) => events.push(p) });
    expect(unreachable.fromCache).toBe(true);
    expect(events.at(-1)?.bytes).toBe(events.at(-1)?.total);

    // A file that went missing or changed size means there is no usable copy: the network error stands.
    await store.delete(KEY);
    expect(await openCachedModel(store, ref)).toBeNull();
    expect(await downloadModel('hub:test/tiny', { store, endpoint: 'http://127.0.0.1:1', retries: 0 }).catch((e) => e)).toBeInstanceOf(DownloadError);
    // A download of chosen files leaves no record of a whole folder.
    const other = new MemoryBlobStore();
    await download('hub:test/tiny', other, { files: ['config.json'] });
    expect(await other.isComplete(downloadRecordKey(ref))).toBe(false);
  });

  it('writes an ordinary model folder into the Node store', async () => {
    const store = openNodeStore(join(tmp, 'node-store'));
    await download('hub:test/tiny', store);
    const folder = await openModelDirectory(join(tmp, 'node-store', 'models', 'test', 'tiny@main'));
    expect(folder.shards.map((s) => s.file)).toEqual(['model.safetensors']);
  });

  it('resumes a download that broke off mid-file with a Range request', async () => {
    const store = new MemoryBlobStore();
    behavior.cut = { file: 'model.safetensors', after: 1500, times: 1 };
    const err = await download('hub:test/tiny', store).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.message).toMatch(/broke off.*1500 bytes are saved/s);
    expect(await store.stat(KEY)).toMatchObject({ size: 1500, complete: false });
    const fresh = await downloadModel('hub:test/tiny', { store, endpoint, retries: 0 }).catch((e) => e);
    expect(fresh).not.toBeInstanceOf(Error);
    const resumed = gets('model.safetensors').at(-1);
    expect(resumed).toMatchObject({ range: 'bytes=1500-', status: 206 });
    expect(await stored(store, 'hub:test/tiny', 'model.safetensors')).toEqual(repos.get('test/tiny')?.['model.safetensors']);
    await openModelFolder(fresh);
  });

  it('retries a broken transfer by itself, resuming where it stopped', async () => {
    const store = new MemoryBlobStore();
    behavior.cut = { file: 'model.safetensors', after: 1000, times: 2 };
    await download('hub:test/tiny', store, { retries: 2 });
    expect(gets('model.safetensors').map((s) => s.range)).toEqual([undefined, 'bytes=1000-', 'bytes=2000-']);
    expect(await stored(store, 'hub:test/tiny', 'model.safetensors')).toEqual(repos.get('test/tiny')?.['model.safetensors']);
  });

  it('stops on an aborted signal with a CancelledError, leaving a resumable partial file', async () => {
    const store = new MemoryBlobStore();
    const ac = new AbortController();
    behavior.chunk = { bytes: 256, delayMs: 5 };
    behavior.onSent = (file, sent) => {
      if (file === 'model.safetensors' && sent >= 1024) ac.abort();
    };
    const err = await download('hub:test/tiny', store, { signal: ac.signal, retries: 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(CancelledError);
    const have = await store.size(KEY);
    const size = repos.get('test/tiny')?.['model.safetensors'].byteLength as number;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThan(size);
    expect(await store.isComplete(KEY)).toBe(false);
    behavior = {};
    await download('hub:test/tiny', store);
    expect(gets('model.safetensors').at(-1)).toMatchObject({ range: `bytes=${have}-`, status: 206 });
    expect(await stored(store, 'hub:test/tiny', 'model.safetensors')).toEqual(repos.get('test/tiny')?.['model.safetensors']);
  });

  it('restarts from zero when the server ignores Range and answers 200', async () => {
    const store = new MemoryBlobStore();
    behavior.cut = { file: 'model.safetensors', after: 700, times: 1 };
    await expect(download('hub:test/tiny', store)).rejects.toThrow(DownloadError);
    expect(await store.size(KEY)).toBe(700);
    behavior = { ignoreRange: true };
    await download('hub:test/tiny', store);
    expect(gets('model.safetensors').at(-1)).toMatchObject({ range: 'bytes=700-', status: 200 });
    expect(await stored(store, 'hub:test/tiny', 'model.safetensors')).toEqual(repos.get('test/tiny')?.['model.safetensors']);
  });

  it('fails on a size that disagrees with the listing, keeping only a valid prefix', async () => {
    const data = repos.get('test/tiny')?.['model.safetensors'] as Uint8Array;
    const store = new MemoryBlobStore();

    // The server announces another size than the listing: nothing is written.
    behavior.listedSize = { 'model.safetensors': data.byteLength + 7 };
    await expect(download('hub:test/tiny', store)).rejects.toThrow(/listing says .* bytes/);
    expect(await store.size(KEY)).toBe(0);

    // The server sends more bytes than listed: the received bytes are discarded.
    behavior = { listedSize: { 'model.safetensors': data.byteLength - 10 }, serve: { 'model.safetensors': data } };
    const over = await download('hub:test/tiny', store).catch((e) => e);
    expect(over).toBeInstanceOf(DownloadError);
    expect(over.message).toMatch(/more than the expected/);
    expect(await store.size(KEY)).toBe(0);

    // The server ends early: the bytes are a prefix of the file and are kept for resuming.
    behavior = { serve: { 'model.safetensors': data.subarray(0, 1000) } };
    const short = await download('hub:test/tiny', store).catch((e) => e);
    expect(short).toBeInstanceOf(DownloadError);
    expect(short.message).toMatch(new RegExp(`ended model.safetensors after 1000 of ${data.byteLength} bytes`));
    expect(await store.stat(KEY)).toMatchObject({ size: 1000, complete: false });
    behavior = {};
    await download('hub:test/tiny', store);
    expect(gets('model.safetensors').at(-1)).toMatchObject({ range: 'bytes=1000-', status: 206 });
    expect(await stored(store, 'hub:test/tiny', 'model.safetensors')).toEqual(data);
  });

  it('explains 401/403 for gated models, with and without a token', async () => {
    const store = new MemoryBlobStore();
    behavior.token = 'hf_secret';
    const anon = await download('hub:test/tiny', store).catch((e) => e);
    expect(anon).toBeInstanceOf(HubAuthError);
    expect(anon.message).toMatch(/HTTP 401/);
    expect(anon.hint).toMatch(/access token/);
    expect(anon.hint).toMatch(/accept the license/);
    expect(anon.hint).toMatch(/Llama 3\.2/);

    const wrong = await download('hub:test/tiny', store, { token: 'hf_wrong' }).catch((e) => e);
    expect(wrong).toBeInstanceOf(HubAuthError);
    expect(wrong.hint).toMatch(/token was refused/);
    expect(wrong.hint).toMatch(/accept the license/);

    seen = [];
    const files = await download('hub:test/tiny', store, { token: 'hf_secret' });
    await openModelFolder(files);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((s) => s.auth === 'Bearer hf_secret')).toBe(true);
  });

  it('names the repository, revision and file on 404', async () => {
    const store = new MemoryBlobStore();
    const none = await download('hub:test/nope@dev', store).catch((e) => e);
    expect(none).toBeInstanceOf(HubNotFoundError);
    expect(none.message).toMatch(/config\.json was not found in repository test\/nope at revision dev/);

    behavior.missing = ['tokenizer.json'];
    const missing = await download('hub:test/tiny', store).catch((e) => e);
    expect(missing).toBeInstanceOf(HubNotFoundError);
    expect(missing.message).toMatch(/tokenizer\.json: .*HTTP 404.*repository test\/tiny at revision main/);
  });

  it('reports progress at most ~10 times a second, monotonic, ending at the total', async () => {
    const store = new MemoryBlobStore();
    behavior.chunk = { bytes: 256, delayMs: 8 };
    const events: (DownloadProgress & { t: number })[] = [];
    const t0 = performance.now();
    const files = await download('hub:test/tiny', store, { onProgress: (p) => events.push({ ...p, t: performance.now() }) });
    const elapsed = performance.now() - t0;
    const total = files.files.reduce((a, f) => a + f.size, 0);
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(events.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2);
    for (let i = 1; i < events.length; i++) {
      expect(events[i].bytes).toBeGreaterThanOrEqual(events[i - 1].bytes);
      if (i < events.length - 1) expect(events[i].t - events[i - 1].t).toBeGreaterThan(90);
    }
    for (const e of events) {
      expect(e.total).toBe(total);
      expect(e.bytes).toBeLessThanOrEqual(total);
      if (e.fileTotal !== null) expect(e.fileBytes).toBeLessThanOrEqual(e.fileTotal);
    }
    expect(events.at(-1)).toMatchObject({ bytes: total, total });
    expect(events.some((e) => e.bytesPerSecond > 0)).toBe(true);
  });

  it('downloads a sharded model: the index and its two shards, never the pickle', async () => {
    const store = new MemoryBlobStore();
    const files = await download('hub:test/sharded', store);
    expect(files.list()).toEqual([
      'config.json',
      'generation_config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const folder = await openModelFolder(files);
    expect(folder.shards.map((s) => s.file)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(seen.some((s) => s.path.includes('pytorch_model'))).toBe(false);
    expect(gets('model.safetensors.index.json')).toHaveLength(1);
  });

  it('falls back to probing the usual files when the listing API answers 404', async () => {
    for (const noHead of [false, true]) {
      const store = new MemoryBlobStore();
      behavior = { listing: 'none', noHead };
      seen = [];
      const files = await download('hub:test/tiny', store);
      expect(files.commit).toBeNull();
      expect(files.list()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      await openModelFolder(files);
      expect(seen.filter((s) => s.method === 'HEAD').length).toBeGreaterThan(0);
      if (noHead) expect(seen.some((s) => s.method === 'GET' && s.range === 'bytes=0-0' && s.status === 206)).toBe(true);
      expect(seen.filter((s) => s.path.startsWith('/api/')).map((s) => s.path)).toEqual([
        '/api/models/test/tiny/revision/main',
        '/api/models/test/tiny',
      ]);
      expect(seen.some((s) => s.path.includes('/resolve/main/special_tokens_map.json') && s.status === 404)).toBe(true);
    }
    const store = new MemoryBlobStore();
    const sharded = await download('hub:test/sharded', store);
    await openModelFolder(sharded);
    expect(sharded.list()).toContain('model-00002-of-00002.safetensors');
  });

  it('learns sizes the listing leaves out before transferring', async () => {
    const store = new MemoryBlobStore();
    behavior.listing = 'no-sizes';
    const events: DownloadProgress[] = [];
    const files = await download('hub:test/tiny', store, { onProgress: (p) => events.push(p) });
    const total = files.files.reduce((a, f) => a + f.size, 0);
    expect(events.every((e) => e.total === total)).toBe(true);
  });

  it('refuses pickle-only repositories and explicit pickle files', async () => {
    const store = new MemoryBlobStore();
    await expect(download('hub:test/pickles', store)).rejects.toThrow(UnsafeWeightsError);
    await expect(download('hub:test/tiny', store, { files: ['pytorch_model.bin'] })).rejects.toThrow(UnsafeWeightsError);
    expect(seen.some((s) => s.path.includes('pytorch_model'))).toBe(false);
    const one = await download('hub:test/tiny', store, { files: ['config.json'] });
    expect(one.list()).toEqual(['config.json']);
    await expect(download('hub:test/tiny', store, { files: ['absent.json'] })).rejects.toThrow(HubNotFoundError);
  });
});
