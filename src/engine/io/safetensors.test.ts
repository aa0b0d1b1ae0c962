import { describe, expect, it } from 'vitest';
import { FileReadError, InvalidArgumentError, SafetensorsFormatError, ShapeError, WhetstoneError } from '../errors.ts';
import {
  MAX_HEADER_BYTES,
  type TensorToWrite,
  f32ToBf16,
  readSafetensorsIndex,
  readTensor,
  readTensorF32,
  streamSafetensors,
  streamTensor,
  writeSafetensors,
} from './safetensors.ts';
import { type ByteSource, memorySource } from './source.ts';

const enc = new TextEncoder();

/** A file from a header string (unpadded) and data bytes. */
function rawFile(header: string, data: Uint8Array | number = 0, lengthField?: bigint): Uint8Array {
  const h = enc.encode(header);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.byteLength + d.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(d, 8 + h.byteLength);
  return out;
}

async function expectFormatError(bytes: Uint8Array, pattern: RegExp, byteOffset?: number): Promise<WhetstoneError> {
  const err = await readSafetensorsIndex(memorySource(bytes, 'bad.safetensors')).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SafetensorsFormatError);
  const e = err as WhetstoneError;
  expect(e.file).toBe('bad.safetensors');
  expect(e.message).toMatch(/^bad\.safetensors/);
  expect(e.message).toMatch(pattern);
  expect(e.byteOffset).toBeTypeOf('number');
  if (byteOffset !== undefined) expect(e.byteOffset).toBe(byteOffset);
  return e;
}

/** Wraps a source and counts the bytes read through it. */
function counting(source: ByteSource): ByteSource & { bytesRead: number; reads: number } {
  const s = {
    name: source.name,
    size: source.size,
    bytesRead: 0,
    reads: 0,
    async read(offset: number, length: number) {
      s.reads++;
      s.bytesRead += length;
      return source.read(offset, length);
    },
  };
  return s;
}

describe('writeSafetensors', () => {
  it('matches the reference implementation byte for byte', () => {
    // safetensors/src/tensor.rs test_serialization and test_serialization_forced_alignement.
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const a = writeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data }]);
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(64);
    expect([...a]).toEqual([64, 0, 0, 0, 0, 0, 0, 0, ...enc.encode(header), ...new Uint8Array(data.buffer)]);

    const b = writeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data }]);
    const h2 = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect([...b]).toEqual([72, 0, 0, 0, 0, 0, 0, 0, ...enc.encode(h2), ...Array(72 - h2.length).fill(32), ...new Uint8Array(data.buffer)]);
  });

  it('writes metadata first and pads an empty file as the reference does', () => {
    // safetensors/src/tensor.rs test_empty.
    expect([...writeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const m = writeSafetensors([], { framework: 'pt' });
    expect([...m]).toEqual([40, 0, 0, 0, 0, 0, 0, 0, ...enc.encode('{"__metadata__":{"framework":"pt"}}'), 32, 32, 32, 32, 32]);
  });

  it('orders data by dtype alignment, then name, and keeps names like "0" in that order', () => {
    const bytes = writeSafetensors([
      { name: 'b', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: 'a', dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
      { name: 'z', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      { name: '0', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
      { name: 'i', dtype: 'I64', shape: [1], data: new BigInt64Array([5n]) },
    ]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const order = ['"i"', '"0"', '"z"', '"a"', '"b"'].map((k) => text.indexOf(k));
    expect(order).toEqual([...order].sort((x, y) => x - y));
    expect(n % 8).toBe(0);
  });

  it('rejects bad input with typed errors', () => {
    const t = (over: Partial<TensorToWrite>): TensorToWrite => ({ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array(2), ...over });
    expect(() => writeSafetensors([t({}), t({})])).toThrow(InvalidArgumentError);
    expect(() => writeSafetensors([t({ data: new Float32Array(3) })])).toThrow(ShapeError);
    expect(() => writeSafetensors([t({ dtype: 'F8' as never })])).toThrow(InvalidArgumentError);
    expect(() => writeSafetensors([t({ name: '__metadata__' })])).toThrow(InvalidArgumentError);
    expect(() => writeSafetensors([t({ shape: [-2] })])).toThrow(ShapeError);
    expect(() => writeSafetensors([], { a: 1 as unknown as string })).toThrow(InvalidArgumentError);
  });
});

describe('round trips', () => {
  const tensors: TensorToWrite[] = [
    { name: 'w.f32', dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -2, 3.25, 0, -0.125, 1e-30]) },
    { name: 'w.bf16', dtype: 'BF16', shape: [3], data: f32ToBf16(new Float32Array([1, -3.5, 1 + 2 ** -8])) },
    { name: 'w.f16', dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    { name: 'w.f64', dtype: 'F64', shape: [2], data: new Float64Array([0.1, -7]) },
    { name: 'w.i64', dtype: 'I64', shape: [2], data: new BigInt64Array([-3n, 1n << 40n]) },
    { name: 'w.i32', dtype: 'I32', shape: [2], data: new Int32Array([-7, 9]) },
    { name: 'w.i8', dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
    { name: 'w.u8', dtype: 'U8', shape: [1, 1, 3], data: new Uint8Array([0, 200, 255]) },
    { name: 'w.bool', dtype: 'BOOL', shape: [2], data: new Uint8Array([0, 1]) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([42]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ];
  const expectF32: Record<string, number[]> = {
    'w.f32': [1.5, -2, 3.25, 0, -0.125, Math.fround(1e-30)],
    'w.bf16': [1, -3.5, 1],
    'w.f16': [1, -2],
    'w.f64': [Math.fround(0.1), -7],
    'w.i64': [-3, 2 ** 40],
    'w.i32': [-7, 9],
    'w.i8': [-128, 0, 127],
    'w.u8': [0, 200, 255],
    'w.bool': [0, 1],
    scalar: [42],
    empty: [],
  };

  it('reads back every dtype, shape and value, and the metadata', async () => {
    const file = writeSafetensors(tensors, { format: 'pt' });
    const src = memorySource(file, 'rt.safetensors');
    const index = await readSafetensorsIndex(src);
    expect(index.metadata).toEqual({ format: 'pt' });
    expect(index.dataOffset % 8).toBe(0);
    expect([...index.tensors.keys()].sort()).toEqual(tensors.map((t) => t.name).sort());
    for (const t of tensors) {
      const e = index.tensors.get(t.name);
      expect(e?.dtype).toBe(t.dtype);
      expect(e?.shape).toEqual(t.shape);
      const raw = await readTensor(src, e!);
      expect([...raw]).toEqual([...new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]);
      expect([...(await readTensorF32(src, e!))]).toEqual(expectF32[t.name]);
    }
  });

  it('streams a tensor in whole-element chunks and reassembles it', async () => {
    const data = new Float32Array(1000).map((_, i) => Math.sin(i));
    const file = writeSafetensors([{ name: 'big', dtype: 'BF16', shape: [10, 100], data: f32ToBf16(data) }]);
    const src = counting(memorySource(file));
    const entry = (await readSafetensorsIndex(src)).tensors.get('big')!;
    const before = src.reads;
    const parts: number[] = [];
    for await (const p of streamTensor(src, entry, { chunkBytes: 301 })) parts.push(p.byteLength);
    expect(parts.every((n) => n % 2 === 0 && n <= 301)).toBe(true);
    expect(parts.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(src.reads - before).toBe(parts.length);
    const whole = await readTensorF32(src, entry, { chunkBytes: 64 });
    const direct = await readTensorF32(memorySource(file), entry);
    expect([...whole]).toEqual([...direct]);
    expect(Math.max(...[...whole].map((v, i) => Math.abs(v - data[i])))).toBeLessThan(0.004);
    expect([...(await readTensor(src, entry, { chunkBytes: 100 }))]).toEqual([...(await readTensor(src, entry))]);
  });

  it('streams the same bytes as the in-memory writer, producing lazy data in order', async () => {
    const calls: string[] = [];
    const lazy = tensors.map((t) => ({
      ...t,
      data: () => {
        calls.push(t.name);
        return t.data;
      },
    }));
    const chunks: Uint8Array[] = [];
    for await (const c of streamSafetensors(lazy, { format: 'pt' })) chunks.push(c);
    const joined = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
    let at = 0;
    for (const c of chunks) {
      joined.set(c, at);
      at += c.byteLength;
    }
    expect([...joined]).toEqual([...writeSafetensors(tensors, { format: 'pt' })]);
    expect(calls).toHaveLength(tensors.length);
    const index = await readSafetensorsIndex(memorySource(joined));
    expect(calls).toEqual([...index.tensors.keys()]);
  });

  it('refuses lazy data of the wrong length mid-stream', async () => {
    const gen = streamSafetensors([{ name: 'x', dtype: 'F32', shape: [4], data: async () => new Float32Array(3) }]);
    await gen.next();
    await expect(gen.next()).rejects.toThrow(ShapeError);
  });

  it('reads tensors at unaligned offsets written by other tools', async () => {
    // U8[3] first puts the F32 tensor at data offset 3: not 4-aligned.
    const header = '{"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}}';
    const data = new Uint8Array(11);
    data.set([7, 8, 9]);
    data.set(new Uint8Array(new Float32Array([1.25, -6]).buffer), 3);
    const src = memorySource(rawFile(header, data));
    const index = await readSafetensorsIndex(src);
    expect([...index.tensors.keys()]).toEqual(['b', 'f']);
    expect([...(await readTensorF32(src, index.tensors.get('f')!))]).toEqual([1.25, -6]);
    expect([...(await readTensorF32(src, index.tensors.get('b')!))]).toEqual([7, 8, 9]);
  });
});

describe('bad files', () => {
  const good = writeSafetensors([
    { name: 'a', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: 'b', dtype: 'F16', shape: [2], data: new Uint16Array([1, 2]) },
  ]);

  it('a file shorter than the length field', async () => {
    await expectFormatError(new Uint8Array(5), /5 bytes long/, 0);
    await expectFormatError(new Uint8Array(0), /0 bytes long/, 0);
  });

  it('a header length over 100 MB is refused before anything is allocated or read', async () => {
    for (const n of [BigInt(MAX_HEADER_BYTES + 1), 0xffffffffffffffffn]) {
      const src = counting(memorySource(rawFile('{}', 0, n), 'bad.safetensors'));
      await expect(readSafetensorsIndex(src)).rejects.toThrow(/at most 100000000 bytes/);
      expect(src.bytesRead).toBe(8);
    }
  });

  it('a header length larger than the file', async () => {
    const e = await expectFormatError(rawFile('{}', 0, 1000n), /header length is 1000 bytes but the file has only 2 bytes/, 0);
    expect(e.hint).toMatch(/damaged/);
  });

  it('a truncated file', async () => {
    await expectFormatError(good.subarray(0, good.byteLength - 3), /truncated/);
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    await expectFormatError(good.subarray(0, 8 + n - 5), /header length/, 0);
  });

  it('a corrupt or non-JSON header', async () => {
    const e = await expectFormatError(rawFile('{"a": {"dtype": "F32",, }}'), /not valid JSON/);
    // The second comma is at header position 22, file byte 30 (when the JSON error gives a position).
    expect(e.byteOffset).toBe(/position/.test(e.message) ? 30 : 8);
    await expectFormatError(rawFile('[1, 2]'), /starting with "\{"/, 8);
    await expectFormatError(rawFile('hello'), /starting with "\{"/, 8);
    await expectFormatError(rawFile(''), /starting with "\{"/, 8);
    const bad = rawFile('{"a"}');
    bad[10] = 0xff; // invalid UTF-8 inside the header
    await expectFormatError(bad, /UTF-8/, 8);
    await expectFormatError(rawFile('{"a": 5}'), /Tensor "a": expected an object/, 9);
  });

  it('bad dtypes, shapes and offsets name the tensor', async () => {
    const one = (info: string, data = 8) => rawFile(`{"t":${info}}`, data);
    await expectFormatError(one('{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}'), /Tensor "t": unsupported dtype "F8_E4M3"; expected one of .*BF16/, 9);
    await expectFormatError(one('{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}'), /non-negative integers/);
    await expectFormatError(one('{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}'), /non-negative integers/);
    await expectFormatError(one('{"dtype":"F32","shape":[2],"data_offsets":[0]}'), /two non-negative integers/);
    await expectFormatError(one('{"dtype":"F32","shape":[2],"data_offsets":[8,0]}'), /end before they begin/);
    await expectFormatError(one('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), /needs 12 bytes but data_offsets \[0, 8\] span 8 bytes/);
    await expectFormatError(
      one('{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}'),
      /too large to address/,
    );
  });

  it('offsets out of range', async () => {
    const header = '{"t":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}';
    const e = await expectFormatError(rawFile(header, 16), /ends at byte .* but the file has only/);
    expect(e.byteOffset).toBe(8 + header.length + 8);
  });

  it('overlapping tensors, holes and trailing bytes', async () => {
    const two = (a: [number, number], b: [number, number], data: number) =>
      rawFile(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[${a}]},"y":{"dtype":"F32","shape":[2],"data_offsets":[${b}]}}`, data);
    await expectFormatError(two([0, 8], [4, 12], 12), /"y".*overlaps tensor "x"/);
    await expectFormatError(two([0, 8], [12, 20], 20), /4-byte hole before tensor "y"/);
    await expectFormatError(two([0, 8], [8, 16], 20), /cover 16 bytes of data but the file holds 20/);
  });

  it('bad __metadata__', async () => {
    await expectFormatError(rawFile('{"__metadata__":{"a":1}}'), /__metadata__ value of "a" must be a string/);
    await expectFormatError(rawFile('{"__metadata__":[1]}'), /__metadata__ must be an object/);
  });

  it('a file that shrinks after its header was read fails the read with a typed error', async () => {
    const index = await readSafetensorsIndex(memorySource(good, 'x.safetensors'));
    const shrunk = memorySource(good.subarray(0, good.byteLength - 2), 'x.safetensors');
    const entry = [...index.tensors.values()].at(-1)!;
    const err = await readTensor(shrunk, entry).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileReadError);
    expect((err as WhetstoneError).message).toMatch(/^x\.safetensors \(byte \d+\): .*runs past the end/);
  });

  it('a cancelled read stops with CancelledError', async () => {
    const index = await readSafetensorsIndex(memorySource(good));
    const ac = new AbortController();
    ac.abort();
    await expect(readTensorF32(memorySource(good), index.tensors.get('a')!, { signal: ac.signal })).rejects.toThrow(/cancelled/);
  });
});
