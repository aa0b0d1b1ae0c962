// Hugging Face Hub downloads: `hub:ORG/NAME@REVISION` references, the repository listing (or, where
// the listing API is unavailable, probes of the files a model folder usually has), the choice of
// files a model folder needs (config, safetensors weights or the index and its shards, tokenizer
// files, generation config; never pickled weights), and their resumable download into a BlobStore
// under `models/<org>/<name>@<revision>/`. The result is a FileSet over the store for
// openModelFolder. A finished download leaves a record (`downloads/<org>/<name>@<revision>.json`)
// naming its files, so the cached copy opens without the network: offline on request, or when the
// Hub cannot be reached. Requests go only to the endpoint given (https://huggingface.co by default)
// and the hosts it redirects to. The HTTP transfer itself is in hub-transfer.ts.

import { DownloadError, HubNotFoundError, HubRefError, InvalidArgumentError, MissingFileError, ModelConfigError, UnsafeWeightsError } from '../errors.ts';
import type { BlobStore } from '../store/store.ts';
import { checkKey } from '../store/store.ts';
import {
  type DownloadProgress,
  type PlannedFile,
  ProgressTracker,
  type TransferContext,
  checkCancelled,
  discard,
  prepareFile,
  probeFile,
  requestWithRetry,
  statusError,
  transferFile,
} from './hub-transfer.ts';
import {
  CONFIG_FILE,
  CONVERT_HINT,
  type FileSet,
  GENERATION_CONFIG_FILE,
  MAX_JSON_BYTES,
  SINGLE_WEIGHTS_FILE,
  TOKENIZER_FILES,
  WEIGHTS_INDEX_FILE,
} from './model-folder.ts';
import { readText } from './source.ts';

export type { DownloadProgress } from './hub-transfer.ts';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';
/** Largest repository listing read (a listing of thousands of files is a few MB). */
export const MAX_LISTING_BYTES = 32 * 1024 * 1024;
/** Most weight shards an index may name. */
export const MAX_SHARDS = 4096;

/** A model repository at a revision (branch, tag or commit). */
export interface HubRef {
  /** `ORG/NAME` (or a bare `NAME` for the Hub's few legacy top-level repositories). */
  repo: string;
  revision: string;
}

const REF_PREFIX = 'hub:';
const REPO_PART = /^[A-Za-z0-9_.-]+$/;

/**
 * Parses `hub:ORG/NAME` or `hub:ORG/NAME@REVISION` (the revision defaults to `main`). Repository ids
 * follow the Hub's rules: letters, digits, '-', '_' and '.', no '--' or '..', not starting or ending
 * with '-' or '.', at most 96 characters. Revisions follow git's branch and tag name rules.
 */
export function parseHubRef(text: string): HubRef {
  const bad = (why: string) => new HubRefError(`${JSON.stringify(text)} is not a Hub model reference: ${why}.`);
  if (typeof text !== 'string') throw bad('it is not a string');
  const s = text.trim();
  if (!s.startsWith(REF_PREFIX)) throw bad(`it must start with "${REF_PREFIX}"`);
  const body = s.slice(REF_PREFIX.length);
  const at = body.indexOf('@');
  const repo = at < 0 ? body : body.slice(0, at);
  const revision = at < 0 ? 'main' : body.slice(at + 1);
  const repoProblem = checkRepoId(repo);
  if (repoProblem) throw bad(repoProblem);
  const revProblem = checkRevision(revision);
  if (revProblem) throw bad(revProblem);
  return { repo, revision };
}

/** `hub:ORG/NAME@REVISION`. */
export function formatHubRef(ref: HubRef): string {
  return `${REF_PREFIX}${ref.repo}@${ref.revision}`;
}

/** Why `repo` is not a valid Hub repository id, or null when it is. */
function checkRepoId(repo: string): string | null {
  if (repo === '') return 'the repository id is empty (expected ORG/NAME)';
  if (repo.length > 96) return 'the repository id is longer than 96 characters';
  const parts = repo.split('/');
  if (parts.length > 2) return `the repository id "${repo}" has more than one "/" (expected ORG/NAME)`;
  for (const p of parts) {
    if (p === '') return `the repository id "${repo}" has an empty part (expected ORG/NAME)`;
    if (!REPO_PART.test(p)) return `the repository id "${repo}" may only contain letters, digits, "-", "_" and "."`;
    if (p.includes('--') || p.includes('..')) return `the repository id "${repo}" contains "--" or ".."`;
    if (/^[-.]|[-.]$/.test(p)) return `a part of the repository id "${repo}" starts or ends with "-" or "."`;
  }
  return null;
}

/** Why `rev` is not a valid revision (git ref name rules, bounded), or null when it is. */
function checkRevision(rev: string): string | null {
  if (rev === '') return 'the revision after "@" is empty';
  if (rev.length > 200) return 'the revision is longer than 200 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f~^:?*[\\@{}"<>|]/.test(rev)) return `the revision "${rev}" contains a space, a control character or one of ~^:?*[\\@{}"<>|`;
  if (rev.startsWith('/') || rev.endsWith('/') || rev.includes('//')) return `the revision "${rev}" has an empty path part`;
  if (rev.includes('..') || rev.endsWith('.') || rev.split('/').some((p) => p.startsWith('.') || p.endsWith('.lock'))) {
    return `the revision "${rev}" is not a valid branch, tag or commit name`;
  }
  return null;
}

/** The store folder of a model: `models/<org>/<name>@<revision>/` (the revision URI-encoded, so one segment). */
export function hubStorePrefix(ref: HubRef): string {
  return `models/${ref.repo}@${encodeURIComponent(ref.revision)}/`;
}

/** `{endpoint}/{repo}/resolve/{revision}/{file}`. */
export function hubFileUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

export interface DownloadOptions {
  /** Where the files are cached; files already complete there are not downloaded again. */
  store: BlobStore;
  /** The Hub (or a mirror); https://huggingface.co by default. */
  endpoint?: string;
  /** An access token, sent as `Authorization: Bearer <token>` (gated and private models). */
  token?: string;
  /** The fetch to use; the global fetch by default. */
  fetch?: typeof fetch;
  /** Called at most about 10 times a second, and once at the end with bytes equal to total. */
  onProgress?: (p: DownloadProgress) => void;
  /** Cancels with a CancelledError; what was written stays resumable. */
  signal?: AbortSignal;
  /** Download exactly these top-level files instead of choosing the files of a model folder. */
  files?: readonly string[];
  /** Extra attempts after a network failure, a broken-off transfer, HTTP 429 or 5xx (3 by default). */
  retries?: number;
  /** Wait before the n-th extra attempt: n times this (1000 ms by default). */
  retryDelayMs?: number;
  /** Use the finished download in the store without asking the Hub (HF_HUB_OFFLINE=1 in the CLI). */
  offline?: boolean;
}

/** The downloaded files, as a FileSet over the store. */
export interface HubFileSet extends FileSet {
  readonly name: string;
  readonly ref: HubRef;
  /** The commit the files were downloaded from, when the listing named it. */
  readonly commit: string | null;
  /** The store folder holding the files. */
  readonly prefix: string;
  /** The files and their sizes. */
  readonly files: readonly { name: string; size: number }[];
  /** True when the files came from an earlier download without asking the Hub. */
  readonly fromCache: boolean;
}

/** Store folder of the download records. */
export const DOWNLOAD_RECORDS = 'downloads/';

/** What a finished download holds, saved at `downloadRecordKey(ref)` once every file is complete. */
export interface DownloadRecord {
  repo: string;
  revision: string;
  commit: string | null;
  files: { name: string; size: number }[];
  /** ISO date of the end of the download. */
  finished: string;
}

/** `downloads/<org>/<name>@<revision>.json` (the revision URI-encoded). */
export function downloadRecordKey(ref: HubRef): string {
  return `${DOWNLOAD_RECORDS}${ref.repo}@${encodeURIComponent(ref.revision)}.json`;
}

/** The record of a finished download of `ref`, or null when there is none (or it cannot be read). */
export async function readDownloadRecord(store: BlobStore, ref: HubRef): Promise<DownloadRecord | null> {
  const key = downloadRecordKey(ref);
  if (!(await store.isComplete(key))) return null;
  try {
    const v = JSON.parse(await readText(await store.read(key), 1 << 20)) as DownloadRecord;
    return Array.isArray(v.files) && v.files.every((f) => typeof f?.name === 'string' && Number.isSafeInteger(f.size)) ? v : null;
  } catch {
    return null;
  }
}

/**
 * The files of a finished download of `ref` from the store, without the network: null when there is
 * no record, or when a file it names is missing, partial or of another size.
 */
export async function openCachedModel(store: BlobStore, ref: HubRef): Promise<HubFileSet | null> {
  const hub = parseHubRef(formatHubRef(ref));
  const record = await readDownloadRecord(store, hub);
  if (!record) return null;
  const prefix = hubStorePrefix(hub);
  for (const f of record.files) {
    const info = await store.stat(prefix + f.name);
    if (!info?.complete || info.size !== f.size) return null;
  }
  return storeFileSet(store, hub, record.commit, prefix, record.files, true);
}

async function writeDownloadRecord(store: BlobStore, record: DownloadRecord): Promise<void> {
  const key = downloadRecordKey({ repo: record.repo, revision: record.revision });
  const bytes = new TextEncoder().encode(JSON.stringify(record));
  await store.delete(key);
  await store.append(key, bytes);
  await store.finalize(key, { size: bytes.byteLength });
}

interface ListedFile {
  size?: number;
  etag?: string;
}

interface Listing {
  files: Map<string, ListedFile>;
  commit: string | null;
}

/**
 * Downloads the files of a model folder from the Hub into `options.store` (resuming partial files,
 * skipping complete ones of the same size and version) and returns a FileSet over them. With
 * `offline`, or when the Hub cannot be reached, a finished earlier download of the same reference
 * is used as it is (as the Hugging Face tools do); without one, the error says so.
 */
export async function downloadModel(ref: string | HubRef, options: DownloadOptions): Promise<HubFileSet> {
  const hub = typeof ref === 'string' ? parseHubRef(ref) : parseHubRef(formatHubRef(ref));
  const endpoint = normalizeEndpoint(options.endpoint ?? DEFAULT_HUB_ENDPOINT);
  const token = checkToken(options.token);
  const retries = options.retries ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  if (!Number.isSafeInteger(retries) || retries < 0 || retries > 100) throw new InvalidArgumentError(`retries must be an integer in 0..100, got ${retries}.`);
  if (!Number.isFinite(retryDelayMs) || retryDelayMs < 0) throw new InvalidArgumentError(`retryDelayMs must be a non-negative number, got ${retryDelayMs}.`);
  const progress = new ProgressTracker(options.onProgress);
  const ctx: TransferContext = {
    store: options.store,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    tokenGiven: token !== undefined,
    signal: options.signal,
    retries,
    retryDelayMs,
    repo: hub.repo,
    revision: hub.revision,
    where: `${hub.repo}@${hub.revision}`,
    progress,
  };
  const prefix = hubStorePrefix(hub);
  checkCancelled(options.signal, `Downloading ${ctx.where}`);

  const cached = async (): Promise<HubFileSet | null> => {
    // A request for chosen files is answered from a cached folder that holds all of them.
    const set = await openCachedModel(options.store, hub);
    if (!set || (options.files && !options.files.every((f) => set.files.some((c) => c.name === f)))) return null;
    progress.start(set.files.map((f) => ({ name: f.name, bytes: f.size, size: f.size })));
    progress.emit(true);
    return set;
  };
  if (options.offline) {
    const set = await cached();
    if (set) return set;
    throw new MissingFileError(`${ctx.where} is not completely downloaded, and the download was asked to stay offline.`, {
      hint: 'Connect to the network and download it once (unset HF_HUB_OFFLINE in the CLI).',
    });
  }

  let listing: Listing | null;
  try {
    listing = await fetchListing(ctx, endpoint, hub);
  } catch (e) {
    if (!(e instanceof DownloadError)) throw e;
    const set = await cached();
    if (set) return set;
    throw e;
  }
  // Files come from the listed commit when there is one, so a branch that moves mid-download cannot mix versions.
  const from = listing?.commit ?? hub.revision;
  const plan = (name: string, known?: ListedFile): PlannedFile => {
    try {
      checkKey(prefix + name);
    } catch {
      throw new InvalidArgumentError(`${JSON.stringify(name)} is not a file name that can be downloaded.`);
    }
    return { name, key: prefix + name, url: hubFileUrl(endpoint, hub.repo, from, name), size: known?.size, etag: known?.etag };
  };
  /** The listed or probed state of `name`; a HubNotFoundError when it is not there. */
  const require = async (name: string): Promise<PlannedFile> => {
    const p = plan(name);
    if (listing) {
      const known = listing.files.get(name);
      if (!known) throw notFound(ctx, p.url, name);
      return plan(name, known);
    }
    const probed = await probeFile(ctx, p.url, name);
    if (!probed) throw notFound(ctx, p.url, name);
    return plan(name, probed);
  };
  const optional = async (name: string): Promise<PlannedFile | null> => {
    if (listing) return listing.files.has(name) ? plan(name, listing.files.get(name)) : null;
    const p = plan(name);
    const probed = await probeFile(ctx, p.url, name);
    return probed ? plan(name, probed) : null;
  };
  /** Downloads one file before the plan is complete (the weight index), without progress events. */
  const fetchNow = async (f: PlannedFile): Promise<void> => {
    if (!(await prepareFile(ctx.store, f)).complete) await transferFile(ctx, f);
  };

  const files: PlannedFile[] = [];
  if (options.files) {
    for (const name of options.files) {
      refusePickle(name, ctx.where);
      files.push(await require(name));
    }
  } else {
    files.push(...(await chooseFiles(ctx, listing, require, optional, fetchNow, prefix)));
  }

  // Sizes the listing left out are learnt from the server, so the total is known before the transfer.
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    if (f.size === undefined && !(await ctx.store.isComplete(f.key))) {
      const probed = await probeFile(ctx, f.url, f.name);
      if (!probed) throw notFound(ctx, f.url, f.name);
      files[i] = { ...f, size: probed.size, etag: f.etag ?? probed.etag };
    }
  }

  const states: { bytes: number; complete: boolean }[] = [];
  for (const f of files) states.push(await prepareFile(ctx.store, f));
  progress.start(files.map((f, i) => ({ name: f.name, bytes: states[i].bytes, size: states[i].complete ? states[i].bytes : (f.size ?? null) })));
  for (let i = 0; i < files.length; i++) {
    checkCancelled(options.signal, `Downloading ${ctx.where}`);
    const f = files[i];
    if (states[i].complete) continue;
    await transferFile(ctx, f);
    const size = await ctx.store.size(f.key);
    progress.setFile(f.name, size, size);
  }

  const sizes: { name: string; size: number }[] = [];
  for (const f of files) {
    const info = await ctx.store.stat(f.key);
    if (!info?.complete) throw new MissingFileError(`${f.name} of ${ctx.where} is not complete in the store.`, { file: f.key });
    sizes.push({ name: f.name, size: info.size });
  }
  // The record names a whole model folder; a download of chosen files leaves none.
  if (!options.files) await writeDownloadRecord(ctx.store, { repo: hub.repo, revision: hub.revision, commit: listing?.commit ?? null, files: sizes, finished: new Date().toISOString() });
  progress.emit(true);
  return storeFileSet(ctx.store, hub, listing?.commit ?? null, prefix, sizes, false);
}

/** A FileSet over files already in a store under `prefix`. */
function storeFileSet(store: BlobStore, ref: HubRef, commit: string | null, prefix: string, files: { name: string; size: number }[], fromCache: boolean): HubFileSet {
  const names = new Set(files.map((f) => f.name));
  const name = formatHubRef(ref);
  return {
    name,
    ref,
    commit,
    prefix,
    files,
    fromCache,
    list: () => [...names].sort(),
    open(file) {
      if (!names.has(file)) throw new MissingFileError(`${file} is not among the downloaded files of ${name}.`, { file });
      return store.read(prefix + file);
    },
  };
}

/**
 * The files of a model folder: config.json, generation_config.json and the tokenizer files that
 * exist, and the weights (the index and the shards it names, else model.safetensors). The index is
 * downloaded here, to learn its shards.
 */
async function chooseFiles(
  ctx: TransferContext,
  listing: Listing | null,
  require: (name: string) => Promise<PlannedFile>,
  optional: (name: string) => Promise<PlannedFile | null>,
  fetchNow: (f: PlannedFile) => Promise<void>,
  prefix: string,
): Promise<PlannedFile[]> {
  if (listing && !listing.files.has(CONFIG_FILE)) {
    throw new MissingFileError(`${ctx.where} has no ${CONFIG_FILE}, so it is not a Transformers model repository.`, {
      file: CONFIG_FILE,
      hint: 'Pick the repository of the original model (with config.json and safetensors weights), not a GGUF, ONNX or MLX conversion.',
    });
  }
  const out: PlannedFile[] = [await require(CONFIG_FILE)];
  // The fallback without a listing probes the usual files only; a listing shows every tokenizer file.
  const extras = listing
    ? [GENERATION_CONFIG_FILE, ...TOKENIZER_FILES]
    : [GENERATION_CONFIG_FILE, 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
  for (const name of extras) {
    const f = await optional(name);
    if (f) out.push(f);
  }

  const index = await optional(WEIGHTS_INDEX_FILE);
  if (index) {
    await fetchNow(index);
    out.push(index);
    for (const shard of await readShardNames(ctx, prefix + WEIGHTS_INDEX_FILE)) {
      const p = listing ? (listing.files.has(shard) ? await require(shard) : null) : await optional(shard);
      if (!p) {
        throw new MissingFileError(`Shard ${shard}, named in ${WEIGHTS_INDEX_FILE}, is not in ${ctx.where}.`, { file: WEIGHTS_INDEX_FILE });
      }
      out.push(p);
    }
    return out;
  }
  const single = await optional(SINGLE_WEIGHTS_FILE);
  if (single) {
    out.push(single);
    return out;
  }
  const names = listing ? [...listing.files.keys()] : [];
  const pickles = names.filter(isPickleName);
  if (pickles.length > 0) {
    throw new UnsafeWeightsError(
      `${ctx.where} has only PyTorch pickle weights (${pickles.slice(0, 4).join(', ')}${pickles.length > 4 ? ', …' : ''}); pickles are never downloaded.`,
      { hint: CONVERT_HINT },
    );
  }
  const others = names.filter((n) => n.endsWith('.safetensors'));
  throw new MissingFileError(
    `${ctx.where} has neither ${SINGLE_WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE}${others.length ? ` (found ${others.slice(0, 4).join(', ')})` : ''}.`,
    {
      file: SINGLE_WEIGHTS_FILE,
      hint: listing
        ? 'Whetstone loads Transformers safetensors checkpoints; pick a repository that has them.'
        : 'The repository listing was unavailable, so only the usual file names were tried; pick a repository with ' +
          'model.safetensors (or model.safetensors.index.json and its shards).',
    },
  );
}

/** The shard files named by the weight index in the store, sorted and checked to be plain top-level names. */
async function readShardNames(ctx: TransferContext, key: string): Promise<string[]> {
  const source = await ctx.store.read(key);
  let text: string;
  try {
    text = await readText(source, MAX_JSON_BYTES);
  } finally {
    await source.close?.();
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError(`The file is not valid JSON: ${(e as Error).message}`, { file: WEIGHTS_INDEX_FILE, cause: e });
  }
  const wm = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>).weight_map : undefined;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
    throw new ModelConfigError('Key "weight_map" is missing or not an object mapping tensor names to shard files.', { file: WEIGHTS_INDEX_FILE });
  }
  const shards = new Set<string>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard.endsWith('.safetensors') || /[\\/]/.test(shard) || shard.startsWith('.')) {
      throw new ModelConfigError(`weight_map entry "${tensor}" names ${JSON.stringify(shard)}; expected a .safetensors file name in the folder.`, {
        file: WEIGHTS_INDEX_FILE,
      });
    }
    shards.add(shard);
    if (shards.size > MAX_SHARDS) throw new ModelConfigError(`weight_map names more than ${MAX_SHARDS} shard files.`, { file: WEIGHTS_INDEX_FILE });
  }
  if (shards.size === 0) throw new ModelConfigError('weight_map is empty.', { file: WEIGHTS_INDEX_FILE });
  return [...shards].sort();
}

/**
 * The repository listing from `/api/models/{repo}/revision/{revision}` (and `/api/models/{repo}`
 * for `main`), or null when the endpoint has no listing API (HTTP 400, 404, 405, 410 or 501).
 */
async function fetchListing(ctx: TransferContext, endpoint: string, ref: HubRef): Promise<Listing | null> {
  const urls = [`${endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}?blobs=true`];
  if (ref.revision === 'main') urls.push(`${endpoint}/api/models/${ref.repo}?blobs=true`);
  for (const url of urls) {
    const res = await requestWithRetry(ctx, 'GET', url, {}, `the listing of ${ctx.where}`);
    if ([400, 404, 405, 410, 501].includes(res.status)) {
      await discard(res);
      continue;
    }
    if (res.status !== 200) throw await statusError(ctx, res, url, `the listing of ${ctx.where}`);
    return parseListing(await readCapped(ctx, res, url), url);
  }
  return null;
}

async function readCapped(ctx: TransferContext, res: Response, url: string): Promise<string> {
  const bad = (m: string) => new DownloadError(m, { file: url, hint: 'The endpoint does not answer like the Hugging Face Hub API; check HF_ENDPOINT.' });
  const declared = Number(res.headers.get('content-length'));
  if (declared > MAX_LISTING_BYTES) {
    await discard(res);
    throw bad(`The repository listing is ${declared} bytes; at most ${MAX_LISTING_BYTES} are read.`);
  }
  const parts: Uint8Array[] = [];
  let n = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        checkCancelled(ctx.signal, `Listing ${ctx.where}`);
        throw bad(`The repository listing broke off: ${(e as Error).message}.`);
      }
      if (r.done) break;
      n += r.value.byteLength;
      if (n > MAX_LISTING_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw bad(`The repository listing is over ${MAX_LISTING_BYTES} bytes.`);
      }
      parts.push(r.value);
    }
  }
  const all = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(all);
  } catch (e) {
    throw bad(`The repository listing is not UTF-8 text: ${(e as Error).message}.`);
  }
}

/** Parses `{sha?, siblings: [{rfilename, size?, blobId?, lfs?: {size, sha256}}]}`; only top-level files are kept. */
export function parseListing(text: string, url: string): Listing {
  const bad = (m: string, cause?: unknown) =>
    new DownloadError(m, { file: url, cause, hint: 'The endpoint does not answer like the Hugging Face Hub API; check HF_ENDPOINT.' });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`The repository listing is not valid JSON: ${(e as Error).message}`, e);
  }
  const obj = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  if (!obj || !Array.isArray(obj.siblings)) throw bad('The repository listing has no "siblings" array of files.');
  const files = new Map<string, ListedFile>();
  for (const s of obj.siblings as unknown[]) {
    const e = s !== null && typeof s === 'object' ? (s as Record<string, unknown>) : null;
    if (!e || typeof e.rfilename !== 'string') throw bad('An entry of "siblings" has no "rfilename" string.');
    const name = e.rfilename;
    if (name.includes('/') || name.includes('\\')) continue;
    const lfs = e.lfs !== null && typeof e.lfs === 'object' ? (e.lfs as Record<string, unknown>) : null;
    const size = byteCount(lfs?.size) ?? byteCount(e.size);
    const oid = typeof lfs?.sha256 === 'string' && lfs.sha256 ? lfs.sha256 : typeof e.blobId === 'string' && e.blobId ? e.blobId : undefined;
    const f: ListedFile = {};
    if (size !== undefined) f.size = size;
    if (oid !== undefined) f.etag = `oid:${oid}`;
    files.set(name, f);
  }
  const commit = typeof obj.sha === 'string' && /^[0-9a-f]{40}$/.test(obj.sha) ? obj.sha : null;
  return { files, commit };
}

function byteCount(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function notFound(ctx: TransferContext, url: string, name: string): Error {
  return new HubNotFoundError(`${name} was not found in repository ${ctx.repo} at revision ${ctx.revision}.`, { file: url });
}

const PICKLE_EXT = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

function isPickleName(name: string): boolean {
  return PICKLE_EXT.test(name);
}

function refusePickle(name: string, where: string): void {
  if (isPickleName(name)) {
    throw new UnsafeWeightsError(`${name} of ${where} is a PyTorch pickle file; pickles are never downloaded.`, { file: name, hint: CONVERT_HINT });
  }
}

function normalizeEndpoint(endpoint: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new InvalidArgumentError(`The Hub endpoint ${JSON.stringify(endpoint)} is not a URL.`, { hint: 'Use a URL such as https://huggingface.co.' });
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.search || u.hash || u.username || u.password) {
    throw new InvalidArgumentError(`The Hub endpoint ${JSON.stringify(endpoint)} must be an http(s) URL without credentials, query or fragment.`, {
      hint: 'Use a URL such as https://huggingface.co.',
    });
  }
  return `${u.origin}${u.pathname}`.replace(/\/+$/, '');
}

function checkToken(token: string | undefined): string | undefined {
  const t = token?.trim();
  if (!t) return undefined;
  if (!/^[\x21-\x7e]+$/.test(t)) {
    throw new InvalidArgumentError('The access token contains spaces or characters that are not printable ASCII.', {
      hint: 'Copy the token again from https://huggingface.co/settings/tokens.',
    });
  }
  return t;
}
