/**
 * Layer names inside the transformer models. The Dense projections end in the names PEFT users
 * target: `query`, `key`, `value`, `attention_output`, `intermediate`, `output`.
 *
 * ```
 * embeddings
 * encoder/layer_{i}/attention/layer_norm          (pre-norm; `…/attention/output_layer_norm` for post-norm)
 * encoder/layer_{i}/attention/query | key | value
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
