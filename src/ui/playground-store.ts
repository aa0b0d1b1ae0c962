// UI state of the Playground screen (zustand): the prompt, the generation settings as typed, the
// adapters the worker lists, the chosen adapter and its strength, and the two columns as they
// stream in. It calls the worker and keeps what comes back; the pure helpers below (reading the
// settings fields, column figures) compute nothing the engine does.

import { create } from 'zustand';
import type { SerializedError } from '../engine/errors.ts';
import type { AdapterEntry, ColumnDelta, PlaygroundRequest, PlaygroundResult } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { getEngine } from './store.ts';

/** The settings fields as typed (strings), so that a half-typed number is not lost. */
export interface SettingsFields {
  maxNewTokens: string;
  temperature: string;
  topP: string;
  topK: string;
  seed: string;
  chat: boolean;
}

export const DEFAULT_FIELDS: SettingsFields = { maxNewTokens: '64', temperature: '0', topP: '1', topK: '0', seed: '0', chat: false };
export const STRENGTH_STEP = 0.05;
export const MAX_STRENGTH = 2;

type Settings = Omit<PlaygroundRequest, 'prompt' | 'adapterId' | 'strength'>;

/** The settings as numbers, or the first field that is not a valid number, in words. */
export function readSettings(f: SettingsFields): { ok: true; value: Settings } | { ok: false; problem: string } {
  const num = (label: string, text: string, check: (v: number) => boolean, expected: string): number | string => {
    const v = text.trim() === '' ? Number.NaN : Number(text);
    return Number.isFinite(v) && check(v) ? v : `${label} must be ${expected}; it is "${text}".`;
  };
  const whole = (v: number) => Number.isInteger(v);
  const values = [
    num('Max new tokens', f.maxNewTokens, (v) => whole(v) && v >= 1 && v <= 4096, 'a whole number of tokens from 1 to 4096'),
    num('Temperature', f.temperature, (v) => v >= 0, 'a number ≥ 0 (0 is greedy)'),
    num('Top-p', f.topP, (v) => v > 0 && v <= 1, 'a probability in (0, 1]'),
    num('Top-k', f.topK, (v) => whole(v) && v >= 0, 'a whole number of tokens ≥ 0 (0 keeps all)'),
    num('Seed', f.seed, (v) => whole(v) && v >= 0 && v <= 0xffffffff, 'a whole number from 0 to 4294967295'),
  ];
  const problem = values.find((v) => typeof v === 'string');
  if (typeof problem === 'string') return { ok: false, problem };
  const [maxNewTokens, temperature, topP, topK, seed] = values as number[];
  return { ok: true, value: { maxNewTokens, temperature, topP, topK, seed, chat: f.chat } };
}

/** A strength as the slider shows it: "1.00×". */
export function formatStrength(s: number): string {
  return `${s.toFixed(2)}×`;
}

/** What a column has produced so far. */
export interface ColumnView {
  text: string;
  tokens: number;
  seconds: number;
  done: boolean;
  finishReason: PlaygroundResult['base']['finishReason'] | null;
}

const EMPTY_COLUMN: ColumnView = { text: '', tokens: 0, seconds: 0, done: false, finishReason: null };

/** A column's figures with units: "8 tokens · 2.4 tokens/s · 3.3 s". */
export function columnFigures(c: Pick<ColumnView, 'tokens' | 'seconds'>): string {
  const tokens = `${c.tokens} token${c.tokens === 1 ? '' : 's'}`;
  if (c.seconds <= 0) return tokens;
  return `${tokens} · ${(c.tokens / c.seconds).toFixed(1)} tokens/s · ${c.seconds.toFixed(1)} s`;
}

/** The columns with a batch of streamed deltas applied. */
export function applyDeltas(columns: { base: ColumnView; tuned: ColumnView | null }, deltas: readonly ColumnDelta[]): { base: ColumnView; tuned: ColumnView | null } {
  const out = { ...columns };
  for (const d of deltas) {
    const prev = out[d.column] ?? EMPTY_COLUMN;
    out[d.column] = { ...prev, text: prev.text + d.text, tokens: d.tokens, seconds: d.seconds, done: d.done };
  }
  return out;
}

/** What the columns were generated with, for their headings. */
export interface Shown {
  adapterName: string | null;
  strength: number;
}

interface PlaygroundState {
  prompt: string;
  fields: SettingsFields;
  adapters: AdapterEntry[] | null;
  adapterId: string | null;
  strength: number;
  /** The last adapter problem (a dropped adapter refused, a check failed). */
  adapterError: { title: string; error: SerializedError } | null;
  /** A dropped adapter or a check in progress. */
  adapterBusy: boolean;
  running: AbortHandle | null;
  columns: { base: ColumnView; tuned: ColumnView | null } | null;
  shown: Shown | null;
  result: PlaygroundResult | null;
  error: SerializedError | null;
  settingsProblem: string | null;
  /** The GPU job that held the engine when last asked ("training", …), or null. */
  busyWith: string | null;
  checkBusy: () => Promise<void>;
  setPrompt: (prompt: string) => void;
  setField: <K extends keyof SettingsFields>(key: K, value: SettingsFields[K]) => void;
  setStrength: (strength: number) => void;
  refreshAdapters: () => Promise<void>;
  selectAdapter: (id: string | null) => Promise<void>;
  dropAdapter: (files: File[]) => Promise<void>;
  generate: () => Promise<void>;
  stop: () => void;
}

export const usePlayground = create<PlaygroundState>((set, get) => ({
  prompt: 'Once upon a time',
  fields: DEFAULT_FIELDS,
  adapters: null,
  adapterId: null,
  strength: 1,
  adapterError: null,
  adapterBusy: false,
  running: null,
  columns: null,
  shown: null,
  result: null,
  error: null,
  settingsProblem: null,
  busyWith: null,

  async checkBusy() {
    const job = await getEngine().busyWith();
    set({ busyWith: job === 'generation' ? null : job });
  },

  setPrompt: (prompt) => set({ prompt }),
  setField: (key, value) => set({ fields: { ...get().fields, [key]: value }, settingsProblem: null }),
  setStrength: (strength) => set({ strength: Math.min(MAX_STRENGTH, Math.max(0, Number((Math.round(strength / STRENGTH_STEP) * STRENGTH_STEP).toFixed(2)))) }),

  async refreshAdapters() {
    const r = await getEngine().listAdapters();
    if (!r.ok) {
      set({ adapterError: { title: 'Could not list the adapters in the store.', error: r.error } });
      return;
    }
    const id = get().adapterId;
    // The first adapter is chosen when none is; a chosen one that is gone is let go.
    const next = id !== null && r.value.some((a) => a.id === id) ? id : (r.value.find((a) => a.error === null)?.id ?? null);
    set({ adapters: r.value });
    if (next !== id) await get().selectAdapter(next);
  },

  async selectAdapter(id) {
    set({ adapterId: id, adapterError: null });
    if (id === null) return;
    set({ adapterBusy: true });
    const r = await getEngine().checkAdapter(id);
    // A check refused because a job runs says nothing about the adapter; generation checks again.
    if (get().adapterId === id) {
      set({ adapterBusy: false, adapterError: r.ok || r.error.name === 'EngineBusyError' ? null : { title: `The adapter ${id.replace(/^\w+:/, '')} cannot be used with this model.`, error: r.error } });
    }
  },

  async dropAdapter(files) {
    set({ adapterBusy: true, adapterError: null });
    const r = await getEngine().addAdapterFiles(files);
    set({ adapterBusy: false });
    if (!r.ok) {
      set({ adapterError: { title: 'The dropped adapter was not taken.', error: r.error } });
      return;
    }
    await get().refreshAdapters();
    set({ adapterId: r.value.id });
  },

  async generate() {
    if (get().running) return;
    const settings = readSettings(get().fields);
    if (!settings.ok) {
      set({ settingsProblem: settings.problem });
      return;
    }
    const { adapterId, strength, adapters, prompt } = get();
    const abort = abortHandle();
    const request: PlaygroundRequest = { ...settings.value, prompt, adapterId, strength };
    const name = adapters?.find((a) => a.id === adapterId)?.name ?? null;
    set({
      busyWith: null,
      running: abort,
      columns: { base: EMPTY_COLUMN, tuned: adapterId ? EMPTY_COLUMN : null },
      shown: { adapterName: adapterId ? name : null, strength },
      result: null,
      error: null,
      settingsProblem: null,
    });
    const onChunk = progressCallback((deltas: ColumnDelta[]) => {
      const columns = get().columns;
      if (get().running === abort && columns) set({ columns: applyDeltas(columns, deltas) });
    });
    const r = await getEngine().generate(request, onChunk, abort.token);
    if (get().running !== abort) return;
    if (r.ok) {
      const fin = (c: PlaygroundResult['base']): ColumnView => ({ text: c.text, tokens: c.tokens, seconds: c.seconds, done: true, finishReason: c.finishReason });
      set({ running: null, result: r.value, columns: { base: fin(r.value.base), tuned: r.value.tuned ? fin(r.value.tuned) : null } });
    } else {
      set({ running: null, error: r.error, columns: null });
      if (r.error.name === 'EngineBusyError') await get().checkBusy();
    }
  },

  stop() {
    get().running?.abort();
  },
}));
