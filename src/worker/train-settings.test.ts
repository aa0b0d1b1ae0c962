// The Train screen's settings: defaults by model size (the demo model's make a short LoRA run on the
// sample dataset), parsing of what was typed with one message per wrong field, and the way back from
// settings to the form, for every method of the registry and QLoRA.
import { describe, expect, it } from 'vitest';
import { METHOD_INFOS as REGISTRY } from '../engine/peft/method-info.ts';
import { MAX_VIRTUAL_TOKENS } from '../engine/peft/prompt/index.ts';
import { METHODS, METHOD_IDS, defaultDraft, draftOf, engineMethodOf, fieldsOf, loraTargets, parseSettings, sizeClass } from './train-settings.ts';

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
    expect(withField('method', 'magic').errors).toEqual({ method: 'Choose a method: LoRA, QLoRA, DoRA, IA3, Prompt tuning, Prefix tuning, Bottleneck adapters, Full fine-tuning.' });
  });

  it('checks target modules by name', () => {
    expect(withField('lora.targets', 'q_proj, v_proj ,q_proj').settings?.lora?.targets).toBe('q_proj,v_proj');
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

describe('every method', () => {
  it('offers each registry method in its order, QLoRA after LoRA, with the fields of its options', () => {
    expect(METHOD_IDS).toEqual(['lora', 'qlora', 'dora', 'ia3', 'prompt', 'prefix', 'adapter', 'full']);
    for (const m of REGISTRY) {
      expect(METHODS[m.id].name).toBe(m.label);
      expect(METHODS[m.id].engine).toBe(m);
      // Full fine-tuning adds its quantization-aware fields after the registry's.
      const extra = m.id === 'full' ? ['qat.format', 'qat.block'] : [];
      if (m.peftType !== 'LORA') expect(METHODS[m.id].fields.map((f) => f.key)).toEqual([...m.options.map((o) => `${m.id}.${o.key}`), ...extra]);
    }
    expect(fieldsOf('qlora').slice(0, 7).map((f) => f.key)).toEqual(['lora.rank', 'lora.alpha', 'lora.dropout', 'lora.targets', 'quant.format', 'quant.doubleQuant', 'quant.block']);
    expect(fieldsOf('prompt')[1]).toMatchObject({ key: 'prompt.prompt_tuning_init', kind: 'select', options: [{ value: 'RANDOM' }, { value: 'TEXT' }, { value: 'SAMPLE_VOCAB' }] });
    expect(fieldsOf('prompt')[0]).toMatchObject({ label: 'Virtual tokens', unit: 'tokens', kind: 'int' });
    expect(fieldsOf('prompt')[0].help).toContain(`From 1 to ${MAX_VIRTUAL_TOKENS}.`);
  });

  it('parses the defaults of every method into settings that round-trip through the form', () => {
    for (const id of METHOD_IDS) {
      for (const model of [DEMO, SMOL]) {
        const draft = defaultDraft(id, model);
        const { settings, errors } = parseSettings(draft, model);
        expect(errors, id).toEqual({});
        expect(settings?.method).toBe(id);
        expect(parseSettings(draftOf(settings!), model).settings).toEqual(settings);
        const fields = fieldsOf(id);
        expect(fields.every((f) => f.label !== '' && f.help !== ''), id).toBe(true);
        expect(Object.keys(draft).filter((k) => k !== 'method').sort(), id).toEqual(fields.map((f) => f.key).sort());
      }
    }
  });

  it('reads quantization-aware full fine-tuning: off by default, a format with its block, wrong blocks named', () => {
    const full = (extra: Record<string, string>) => parseSettings({ ...defaultDraft('full', DEMO), ...extra }, DEMO);
    expect(full({}).settings?.qat).toBeUndefined();
    expect(full({ 'qat.format': '' }).settings?.qat).toBeUndefined();
    expect(full({ 'qat.format': 'int4', 'qat.block': '32' }).settings?.qat).toEqual({ format: 'int4', block: 32 });
    const settings = full({ 'qat.format': 'nf4' }).settings!;
    expect(settings.qat).toEqual({ format: 'nf4', block: 64 });
    expect(parseSettings(draftOf(settings), DEMO).settings).toEqual(settings);
    expect(full({ 'qat.format': 'nf4', 'qat.block': '48' }).errors['qat.block']).toMatch(/power of two/);
    expect(full({ 'qat.format': 'int4', 'qat.block': '256' }).errors['qat.block']).toMatch(/32, 64 or 128/);
    expect(full({ 'qat.format': 'int3' }).errors['qat.format']).toMatch(/Choose Off or a weight format/);
  });

  it('gives each method the registry values that create its adapter', () => {
    const settingsOf = (id: string, extra: Record<string, string> = {}) => parseSettings({ ...defaultDraft(id, DEMO), ...extra }, DEMO).settings!;
    expect(engineMethodOf(settingsOf('lora'))).toMatchObject({ method: { id: 'lora' }, values: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: 'all-linear' } });
    expect(engineMethodOf(settingsOf('qlora'))).toMatchObject({ method: { id: 'lora' }, values: { r: 8 } });
    expect(settingsOf('qlora').quant).toEqual({ format: 'nf4', doubleQuant: true, block: 64 });
    expect(engineMethodOf(settingsOf('dora')).method.id).toBe('dora');
    expect(engineMethodOf(settingsOf('ia3'))).toMatchObject({ method: { id: 'ia3' }, values: { target_modules: null, feedforward_modules: null } });
    expect(engineMethodOf(settingsOf('ia3', { 'ia3.target_modules': 'v_proj, down_proj', 'ia3.feedforward_modules': 'down_proj' })).values).toEqual({ target_modules: ['v_proj', 'down_proj'], feedforward_modules: ['down_proj'] });
    expect(engineMethodOf(settingsOf('prompt', { 'prompt.num_virtual_tokens': '4', 'prompt.prompt_tuning_init': 'TEXT', 'prompt.prompt_tuning_init_text': 'Answer:' })).values).toEqual({
      num_virtual_tokens: 4,
      prompt_tuning_init: 'TEXT',
      prompt_tuning_init_text: 'Answer:',
    });
    expect(engineMethodOf(settingsOf('prefix')).values).toEqual({ num_virtual_tokens: 20, prefix_projection: false, encoder_hidden_size: 0 });
    expect(engineMethodOf(settingsOf('prefix', { 'prefix.prefix_projection': 'true', 'prefix.encoder_hidden_size': '32' })).values).toEqual({ num_virtual_tokens: 20, prefix_projection: true, encoder_hidden_size: 32 });
    expect(engineMethodOf(settingsOf('adapter')).values).toEqual({ reduction_factor: 16 });
    expect(engineMethodOf(settingsOf('full'))).toMatchObject({ method: { id: 'full' }, values: {} });
  });

  it('checks each option against its registry bounds with a message naming the field', () => {
    const errorsOf = (id: string, key: string, value: string) => parseSettings({ ...defaultDraft(id, DEMO), [key]: value }, DEMO).errors;
    expect(errorsOf('prompt', 'prompt.num_virtual_tokens', '0')).toEqual({ 'prompt.num_virtual_tokens': `Virtual tokens must be from 1 to ${MAX_VIRTUAL_TOKENS}; got 0.` });
    expect(errorsOf('prefix', 'prefix.num_virtual_tokens', 'many')).toEqual({ 'prefix.num_virtual_tokens': 'Virtual tokens must be a whole number; got "many".' });
    expect(errorsOf('prompt', 'prompt.prompt_tuning_init', 'ZEROS')).toEqual({ 'prompt.prompt_tuning_init': 'Choose initialization: RANDOM, TEXT, SAMPLE_VOCAB.' });
    expect(errorsOf('adapter', 'adapter.reduction_factor', '0.5')).toEqual({ 'adapter.reduction_factor': 'Reduction factor must be at least 1; got 0.5.' });
    expect(errorsOf('ia3', 'ia3.target_modules', 'k_proj,lm_head')).toEqual({
      'ia3.target_modules': 'Target modules must be "all-linear" or names from q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; "lm_head" is not among them.',
    });
    expect(errorsOf('dora', 'lora.rank', '0')).toEqual({ 'lora.rank': 'Rank must be from 1 to 1024; got 0.' });
  });

  it('checks the QLoRA quantization fields', () => {
    const errorsOf = (extra: Record<string, string>) => parseSettings({ ...defaultDraft('qlora', DEMO), ...extra }, DEMO).errors;
    expect(errorsOf({ 'quant.format': 'int8' })).toEqual({ 'quant.doubleQuant': 'Double quantization applies to nf4 and fp4, not int8.' });
    expect(errorsOf({ 'quant.format': 'int8', 'quant.doubleQuant': 'false' })).toEqual({});
    expect(errorsOf({ 'quant.block': '48' })).toEqual({ 'quant.block': 'The nf4 block size must be a power of two from 32 to 4096; got 48.' });
    expect(errorsOf({ 'quant.format': 'int4', 'quant.doubleQuant': 'false', 'quant.block': '256' })).toEqual({ 'quant.block': 'The int4 group size must be 32, 64 or 128; got 256.' });
    expect(errorsOf({ 'quant.format': 'q2' })).toEqual({ 'quant.format': 'Choose a quantization: nf4, fp4, int8, int4.' });
  });
});
