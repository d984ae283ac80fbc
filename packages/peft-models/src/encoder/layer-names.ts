/**
 * Layer names inside the transformer models. The Dense projections end in the names PEFT users
 * target: `query`, `key`, `value`, `attention_output`, `intermediate`, `output`.
 *
 * ```
 * embeddings
 * encoder/layer_{i}/attention/layer_norm          (pre-norm; `…/attention/output_layer_norm` for post-norm)
 * encoder/layer_{i}/attention/query | key | value   (or `qkv` + `qkv_split` with `fusedQkv`)
 * encoder/layer_{i}/attention/core                (MultiHeadAttentionCore, no weights)
 * encoder/layer_{i}/attention/attention_output
 * encoder/layer_{i}/attention/residual_projection (only when a block changes width)
 * encoder/layer_{i}/attention/residual            (Add)
 * encoder/layer_{i}/ffn/layer_norm
 * encoder/layer_{i}/ffn/intermediate
 * encoder/layer_{i}/ffn/activation
 * encoder/layer_{i}/ffn/output
 * encoder/layer_{i}/ffn/residual                  (Add)
 * pooling, pooler, pooler/activation, l2_normalize
 * ```
 *
 * `gpt2LayerNames` (`layerNaming: 'gpt2'`) follows Hugging Face GPT-2's module paths instead
 * (`transformer/h/{i}/attn/c_attn`, …; `/` reads as `.` in PEFT module keys).
 */
export function blockPrefix(index: number): string {
  return `encoder/layer_${index}`;
}

export const layerNames = {
  embeddings: 'embeddings',
  embeddingLayerNorm: 'embeddings/layer_norm',
  finalLayerNorm: 'encoder/final_layer_norm',
  pooling: 'pooling',
  pooler: 'pooler',
  poolerActivation: 'pooler/activation',
  l2Normalize: 'l2_normalize',
  classifier: 'classifier',
  block(index: number) {
    const prefix = blockPrefix(index);
    return {
      attentionLayerNorm: `${prefix}/attention/layer_norm`,
      query: `${prefix}/attention/query`,
      qkv: `${prefix}/attention/qkv`,
      qkvSplit: `${prefix}/attention/qkv_split`,
      key: `${prefix}/attention/key`,
      value: `${prefix}/attention/value`,
      attentionCore: `${prefix}/attention/core`,
      attentionOutput: `${prefix}/attention/attention_output`,
      attentionDropout: `${prefix}/attention/dropout`,
      residualProjection: `${prefix}/attention/residual_projection`,
      attentionResidual: `${prefix}/attention/residual`,
      attentionOutputLayerNorm: `${prefix}/attention/output_layer_norm`,
      ffnLayerNorm: `${prefix}/ffn/layer_norm`,
      intermediate: `${prefix}/ffn/intermediate`,
      activation: `${prefix}/ffn/activation`,
      output: `${prefix}/ffn/output`,
      ffnDropout: `${prefix}/ffn/dropout`,
      ffnResidual: `${prefix}/ffn/residual`,
      ffnOutputLayerNorm: `${prefix}/ffn/output_layer_norm`,
    };
  },
} as const;

/** The names every block and model-level layer has, whatever the naming scheme. */
export type TransformerLayerNames = {
  readonly [K in Exclude<keyof typeof layerNames, 'block'>]: string;
} & { block(index: number): Record<keyof ReturnType<typeof layerNames.block>, string> };

/**
 * Hugging Face GPT-2's module paths (`transformer.h.0.attn.c_attn` is the layer
 * `transformer/h/0/attn/c_attn`), so PEFT's GPT-2 targets (`c_attn`, `c_proj`, `c_fc`) and saved
 * adapter keys match. The one embedding layer holds both `wte` and `wpe` (as its `embeddings` and
 * `position_embeddings` weights); the LM head is `lm_head`.
 */
export const gpt2LayerNames: TransformerLayerNames & { lmHead: string } = {
  embeddings: 'transformer/wte',
  embeddingLayerNorm: 'transformer/embeddings_layer_norm',
  finalLayerNorm: 'transformer/ln_f',
  pooling: 'pooling',
  pooler: 'pooler',
  poolerActivation: 'pooler/activation',
  l2Normalize: 'l2_normalize',
  classifier: 'classifier',
  lmHead: 'lm_head',
  block(index: number) {
    const prefix = `transformer/h/${index}`;
    return {
      attentionLayerNorm: `${prefix}/ln_1`,
      query: `${prefix}/attn/query`,
      qkv: `${prefix}/attn/c_attn`,
      qkvSplit: `${prefix}/attn/qkv_split`,
      key: `${prefix}/attn/key`,
      value: `${prefix}/attn/value`,
      attentionCore: `${prefix}/attn/core`,
      attentionOutput: `${prefix}/attn/c_proj`,
      attentionDropout: `${prefix}/attn/resid_dropout`,
      residualProjection: `${prefix}/attn/residual_projection`,
      attentionResidual: `${prefix}/attn/residual`,
      attentionOutputLayerNorm: `${prefix}/attn/output_layer_norm`,
      ffnLayerNorm: `${prefix}/ln_2`,
      intermediate: `${prefix}/mlp/c_fc`,
      activation: `${prefix}/mlp/act`,
      output: `${prefix}/mlp/c_proj`,
      ffnDropout: `${prefix}/mlp/dropout`,
      ffnResidual: `${prefix}/mlp/residual`,
      ffnOutputLayerNorm: `${prefix}/mlp/output_layer_norm`,
    };
  },
};

/** The names a `TransformerEncoderConfig.layerNaming` selects. */
export function layerNamesFor(naming: 'default' | 'gpt2' = 'default'): TransformerLayerNames {
  return naming === 'gpt2' ? gpt2LayerNames : layerNames;
}
