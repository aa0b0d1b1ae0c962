// Sequence packing: places tokenized examples into sequences of at most `maxLength` tokens by
// best-fit decreasing (longest example first, each into the fullest sequence it still fits), so
// fewer padding tokens are computed. Each packed sequence carries, per token, `segments` (the
// index of its example within the sequence) and `positions` (restarting at 0 for each example),
// so attention and rotary positions never cross an example boundary; the label of each example's
// first token is IGNORE_INDEX, so no token is predicted from the previous example.
// It does not tokenize, truncate (examples must already fit) or batch.
import { InvalidArgumentError } from '../errors.ts';
import { IGNORE_INDEX, type TokenizedExample } from './tokenize.ts';

export interface PackedSequence extends TokenizedExample {
  /** Per token: the index, within this sequence, of the example it belongs to (0, 0, 0, 1, 1, 2 ...). */
  segments: Int32Array;
  /** Per token: its position within its own example (0, 1, 2, 0, 1, 0 ...). */
  positions: Int32Array;
  /** Per example in this sequence: its index in the list given to packExamples. */
  examples: number[];
}

/**
 * Packs `examples` into sequences of at most `maxLength` tokens, best-fit decreasing: examples are
 * taken longest first (ties in list order), each going into the open sequence with the least room
 * left that still holds it, or a new sequence. Examples are kept whole and in one piece.
 * Throws InvalidArgumentError for an example longer than maxLength or one with no tokens.
 */
export function packExamples(examples: readonly TokenizedExample[], maxLength: number): PackedSequence[] {
  if (!Number.isSafeInteger(maxLength) || maxLength < 1) throw new InvalidArgumentError(`maxLength must be a positive integer, got ${maxLength}`);
  examples.forEach((e, i) => {
    if (e.inputIds.length === 0) throw new InvalidArgumentError(`example ${i} has no tokens and cannot be packed`);
    if (e.inputIds.length > maxLength) {
      throw new InvalidArgumentError(`example ${i} has ${e.inputIds.length} tokens, more than the packed length ${maxLength}; truncate it first`);
    }
  });
  const order = examples.map((_, i) => i).sort((a, b) => examples[b].inputIds.length - examples[a].inputIds.length || a - b);

  const bins: { items: number[]; free: number }[] = [];
  const byFree = new FreeIndex(maxLength);
  for (const i of order) {
    const len = examples[i].inputIds.length;
    let b = byFree.takeSmallestAtLeast(len);
    if (b < 0) {
      b = bins.length;
      bins.push({ items: [], free: maxLength });
    }
    const bin = bins[b];
    bin.items.push(i);
    bin.free -= len;
    if (bin.free > 0) byFree.add(bin.free, b);
  }

  return bins.map((bin) => {
    const total = maxLength - bin.free;
    const inputIds = new Int32Array(total);
    const labels = new Int32Array(total);
    const segments = new Int32Array(total);
    const positions = new Int32Array(total);
    let at = 0;
    bin.items.forEach((i, s) => {
      const e = examples[i];
      inputIds.set(e.inputIds, at);
      labels.set(e.labels, at);
      labels[at] = IGNORE_INDEX;
      for (let t = 0; t < e.inputIds.length; t++) {
        segments[at + t] = s;
        positions[at + t] = t;
      }
      at += e.inputIds.length;
    });
    return { inputIds, labels, segments, positions, examples: bin.items };
  });
}

/**
 * Open sequences by the room they have left (1..capacity): a stack of sequence indices per amount
 * of room, and a segment tree over the amounts that finds the smallest non-empty one at or above a
 * length in O(log capacity).
 */
class FreeIndex {
  private readonly stacks: number[][];
  private readonly tree: Int32Array;
  private readonly size: number;

  constructor(capacity: number) {
    let size = 1;
    while (size < capacity + 1) size *= 2;
    this.size = size;
    this.tree = new Int32Array(2 * size);
    this.stacks = Array.from({ length: capacity + 1 }, () => []);
  }

  add(free: number, bin: number): void {
    this.stacks[free].push(bin);
    for (let node = free + this.size; node >= 1; node >>= 1) this.tree[node]++;
  }

  /** Removes and returns a sequence with the least room that is still at least `need`; -1 when none. */
  takeSmallestAtLeast(need: number): number {
    const free = this.firstAtLeast(1, 0, this.size - 1, need);
    if (free < 0) return -1;
    const bin = this.stacks[free].pop() as number;
    for (let node = free + this.size; node >= 1; node >>= 1) this.tree[node]--;
    return bin;
  }

  private firstAtLeast(node: number, lo: number, hi: number, need: number): number {
    if (hi < need || this.tree[node] === 0) return -1;
    if (lo === hi) return lo;
    const mid = (lo + hi) >> 1;
    const left = this.firstAtLeast(2 * node, lo, mid, need);
    return left >= 0 ? left : this.firstAtLeast(2 * node + 1, mid + 1, hi, need);
  }
}
