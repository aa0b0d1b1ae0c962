// The Train screen's settings: defaults by model size (the demo model's make a short LoRA run on the
// sample dataset), parsing of what was typed with one message per wrong field, and the way back from
// settings to the form.
import { describe, expect, it } from 'vitest';
import { METHODS, defaultDraft, draftOf, fieldsOf, loraTargets, parseSettings, sizeClass } from './train-settings.ts';

const DEMO = { parameters: 851_000, maxPositionEmbeddings: 2048 };
const SMOL = { parameters: 134.5e6, maxPositionEmbeddings: 8192 };
const BIG = { parameters: 8e9, maxPositionEmbeddings: 131072 };

describe('defaults', () => {
  it('follow the model size', () => {
    expect([DEMO, SMOL, { parameters: 1.2e9, maxPositionEmbeddings: 4096 }, BIG].map((m) => sizeClass(m.parameters))).toEqual(['tiny', 'small', 'medium', 'large']);
    expect(defaultDraft('lora', DEMO)).toMatchObject({ method: 'lora', 'lora.rank': '8', 'lora.alpha': '16', 'lora.dropout': '0', lr: '1e-3', batchSize: '4', gradAccum: '1', seqLen: '128', epochs: '1', steps: '0' });
    expect(defaultDraft('lora', SMOL)).toMatchObject({ 'lora.rank': '16', 'lora.alpha': '32', 'lora.dropout': '0.05', lr: '2e-4', gradAccum: '4', seqLen: '512', warmup: '0.03' });
    expect(defaultDraft('lora', BIG)).toMatchObject({ 'lora.rank': '8', lr: '1e-4', batchSize: '1', gradAccum: '16' });
  });

  it('never exceed the model context', () => {
    expect(defaultDraft('lora', { parameters: 1e6, maxPositionEmbeddings: 64 }).seqLen).toBe('64');
  });

  it('parse into valid settings for every size', () => {
    for (const m of [DEMO, SMOL, BIG]) {
      const { settings, errors } = parseSettings(defaultDraft('lora', m), m);
      expect(errors).toEqual({});
      expect(settings?.method).toBe('lora');
    }
    expect(parseSettings(defaultDraft('lora', DEMO), DEMO).settings).toEqual({
      method: 'lora',
      lora: { rank: 8, alpha: 16, dropout: 0, targets: 'all-linear' },
      lr: 1e-3,
      schedule: 'cosine',
      warmup: 0,
      epochs: 1,
      steps: 0,
      batchSize: 4,
      gradAccum: 1,
      seqLen: 128,
      valFraction: 0.1,
      evalEvery: 0,
      saveEvery: 5,
      seed: 42,
    });
  });
});

describe('validation', () => {
  const withField = (key: string, value: string) => parseSettings({ ...defaultDraft('lora', DEMO), [key]: value }, DEMO);

  it('gives one message per wrong field, naming the field and the allowed values', () => {
    expect(withField('lora.rank', '0').errors).toEqual({ 'lora.rank': 'Rank must be from 1 to 1024; got 0.' });
    expect(withField('lora.rank', '2.5').errors).toEqual({ 'lora.rank': 'Rank must be a whole number; got "2.5".' });
    expect(withField('lr', 'fast').errors).toEqual({ lr: 'The learning rate must be a number (such as 0.1 or 2e-4); got "fast".' });
    expect(withField('lr', '0').errors).toEqual({ lr: 'The learning rate must be above 0 and at most 1; got 0.' });
    expect(withField('lora.dropout', '1').errors).toEqual({ 'lora.dropout': 'Dropout must be at least 0 and below 1; got 1.' });
    expect(withField('seqLen', '4096').errors).toEqual({ seqLen: "The sequence length must be from 8 to the model's context of 2048 tokens; got 4096." });
    expect(withField('batchSize', '').errors).toEqual({ batchSize: 'The batch size is missing.' });
    expect(withField('warmup', '2.5').errors).toEqual({ warmup: 'Warmup must be a whole number of steps, or a share of the run below 1.' });
    expect(withField('valFraction', '0.9').errors).toEqual({ valFraction: 'The validation share must be at least 0 and at most 0.5; got 0.9.' });
    expect(withField('seed', '-1').errors).toEqual({ seed: 'The seed must be a whole number; got "-1".' });
    expect(withField('schedule', 'step').errors).toEqual({ schedule: 'Choose a schedule: constant, linear, cosine.' });
    expect(withField('method', 'magic').errors).toEqual({ method: 'Choose a method: LoRA.' });
  });

  it('checks target modules by name', () => {
    expect(withField('lora.targets', 'q_proj, v_proj ,q_proj').settings?.lora.targets).toBe('q_proj,v_proj');
    expect(withField('lora.targets', 'q_proj,lm_head').errors).toEqual({
      'lora.targets': 'Target modules must be "all-linear" or names from q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; "lm_head" is not among them.',
    });
    expect(withField('lora.targets', ' , ').errors['lora.targets']).toMatch(/none was given/);
    expect(loraTargets('all-linear')).toBe('all-linear');
    expect(loraTargets('q_proj,v_proj')).toEqual(['q_proj', 'v_proj']);
  });

  it('accepts exponents and a warmup ratio, and rejects several fields at once', () => {
    expect(withField('lr', '2E-4').settings?.lr).toBe(2e-4);
    expect(withField('warmup', '0.05').settings?.warmup).toBe(0.05);
    const r = parseSettings({ ...defaultDraft('lora', DEMO), 'lora.rank': 'x', steps: '-3', gradAccum: '0' }, DEMO);
    expect(r.settings).toBeNull();
    expect(Object.keys(r.errors).sort()).toEqual(['gradAccum', 'lora.rank', 'steps']);
  });
});

describe('the form', () => {
  it('round-trips settings through a draft', () => {
    const { settings } = parseSettings(defaultDraft('lora', SMOL), SMOL);
    expect(parseSettings(draftOf(settings!), SMOL).settings).toEqual(settings);
  });

  it('lists the method fields first, every field with a label and a help line, and a unit where one applies', () => {
    const fields = fieldsOf('lora');
    expect(fields.slice(0, METHODS.lora.fields.length).map((f) => f.key)).toEqual(['lora.rank', 'lora.alpha', 'lora.dropout', 'lora.targets']);
    expect(fields.every((f) => f.label !== '' && f.help !== '')).toBe(true);
    expect(Object.fromEntries(fields.filter((f) => f.unit).map((f) => [f.key, f.unit]))).toMatchObject({ seqLen: 'tokens', batchSize: 'rows', steps: 'steps', saveEvery: 'steps' });
    // Every key of the draft is a field of the form, and the other way round.
    expect(Object.keys(defaultDraft('lora', DEMO)).filter((k) => k !== 'method').sort()).toEqual(fields.map((f) => f.key).sort());
  });
});
