// The studio's curated list of Hub models: small instruction models of the Llama family that fit a
// consumer GPU for LoRA. Each entry carries the config.json values the memory estimate needs (as
// published on the Hub), so the studio can size a model before downloading anything.

export interface CatalogEntry {
  /** Hub repository id, ORG/NAME. */
  repo: string;
  title: string;
  /** The Hub asks for an access token and an accepted license before download. */
  gated: boolean;
  /** One line about the model. */
  note: string;
  /** The config.json keys that shape the model (architectures, sizes, dtype). */
  config: Record<string, unknown>;
}

const llama = (c: Record<string, unknown>) => ({ architectures: ['LlamaForCausalLM'], torch_dtype: 'bfloat16', hidden_act: 'silu', ...c });

export const HUB_CATALOG: readonly CatalogEntry[] = [
  {
    repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    title: 'SmolLM2 135M Instruct',
    gated: false,
    note: 'Smallest; quick experiments on any GPU.',
    config: llama({ hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, max_position_embeddings: 8192, rope_theta: 100000, tie_word_embeddings: true }),
  },
  {
    repo: 'HuggingFaceTB/SmolLM2-360M-Instruct',
    title: 'SmolLM2 360M Instruct',
    gated: false,
    note: 'Small and capable for its size.',
    config: llama({ hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, vocab_size: 49152, max_position_embeddings: 8192, rope_theta: 100000, tie_word_embeddings: true }),
  },
  {
    repo: 'Qwen/Qwen2.5-0.5B-Instruct',
    title: 'Qwen2.5 0.5B Instruct',
    gated: false,
    note: 'Multilingual; large vocabulary (151,936 tokens).',
    config: {
      architectures: ['Qwen2ForCausalLM'],
      torch_dtype: 'bfloat16',
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      vocab_size: 151936,
      max_position_embeddings: 32768,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      use_sliding_window: false,
    },
  },
  {
    repo: 'Qwen/Qwen3-0.6B',
    title: 'Qwen3 0.6B',
    gated: false,
    note: 'Hybrid thinking model; q/k norms.',
    config: {
      architectures: ['Qwen3ForCausalLM'],
      torch_dtype: 'bfloat16',
      head_dim: 128,
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      vocab_size: 151936,
      max_position_embeddings: 40960,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      use_sliding_window: false,
    },
  },
  {
    repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    title: 'TinyLlama 1.1B Chat',
    gated: false,
    note: 'Llama 2 architecture; untied output head.',
    config: llama({ hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, max_position_embeddings: 2048, rope_theta: 10000, tie_word_embeddings: false }),
  },
  {
    repo: 'meta-llama/Llama-3.2-1B-Instruct',
    title: 'Llama 3.2 1B Instruct',
    gated: true,
    note: 'Gated: accept the license on the Hub and give an access token.',
    config: llama({
      head_dim: 64,
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 128256,
      max_position_embeddings: 131072,
      rope_theta: 500000,
      rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      tie_word_embeddings: true,
    }),
  },
];
