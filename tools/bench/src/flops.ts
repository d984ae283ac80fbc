// Analytic FLOP count of one training step / one forward pass of a layers model.
//
// Only matrix products are counted (2·m·k·n FLOPs for [m,k]×[k,n]); element-wise work (layer norm,
// softmax, activations, Adam, the embedding gather/scatter) is left out — it is memory-bound and a
// few percent of the products here. Per product, a step counts:
//   forward                      2·m·k·n
//   dW (weight gradient)         2·m·k·n  only when the weight is trainable
//   dX (input gradient)          2·m·k·n  only when some trainable weight lies below the product
//                                          (the gradient must flow through it to reach that weight)
// So the count is what a step NEEDS, not what a given implementation happens to run: a backend that
// computes a frozen kernel's gradient does more work than counted, and shows a lower GFLOP/s.
// Attention (MultiHeadAttentionCore): scores Q·Kᵀ and context P·V, 2·B·Lq·Lk·A each forward (A = the
// attention width, all heads together); backward dP, dV, dQ, dK = 4 products of the same size, each
// only when needed (dV and dK only for the key/value rows that need a gradient).
//
// Prompt methods (@tfjs-peft/prompt), from the layers they insert:
// - prompt tuning (PromptEmbedding): the sequence is n virtual tokens longer from the embedding on,
//   so every product above it runs on B·(L+n) rows and attention on (L+n)×(L+n); the prompt is
//   trainable, so every input gradient is needed down to it (the prompt's own gradient is a slice
//   of the embedding output's: no product). PromptAttentionMask extends the mask the same way.
// - prefix tuning (PrefixAttention around a MultiHeadAttentionCore): the attention sees n extra keys
//   and values (Lk = L+n) while queries stay L; with a trainable prefix the step needs dP, and dK/dV
//   for the n prefix rows even where the real keys and values need no gradient (the lowest layer).
//   PrefixPositionOffset only shifts positions. The tile/concat of the prefix are not products.
import type * as tfl from '@tensorflow/tfjs-layers';

export interface ProductCount {
  layer: string;
  weight: string;
  /** [m, k, n] */
  mkn: [number, number, number];
  forward: number;
  backward: number;
}

export interface FlopCount {
  forward: number;
  /** forward + backward of one training step. */
  step: number;
  products: ProductCount[];
}

type Shape = (number | null)[];

interface NodeLike {
  inboundLayers: tfl.layers.Layer[];
  inputTensors: { shape: Shape }[];
}

/**
 * The node through which `model` calls `layer`. Graph surgery (getPeftModel) re-applies the user's
 * layers, so a shared layer has one node per model built over it; the newest is the adapted model's,
 * and a fresh model's layers have one.
 */
function nodeOf(layer: tfl.layers.Layer): NodeLike {
  const nodes = (layer as unknown as { inboundNodes: NodeLike[] }).inboundNodes;
  return nodes[nodes.length - 1];
}

function rows(shape: Shape, batch: number, length: number): number {
  if (shape.length === 3) return batch * length;
  if (shape.length === 2) return batch;
  throw new Error(`unexpected input rank ${shape.length}`);
}

/** Layers whose 2-D weights are not matrix products (embedding tables, prompt tables, and the layers wrapping them). */
const NOT_PRODUCTS = new Set([
  'TokenAndPositionEmbedding',
  'Embedding',
  'PromptEmbedding',
  'PromptAttentionMask',
  'PrefixPositionOffset',
]);

/** Attention cores: no weights, two batched products (QKᵀ, PV). PrefixAttention wraps one (prefix tuning). */
const ATTENTION = new Set(['MultiHeadAttentionCore', 'PrefixAttention']);

/** The rows a prompt layer adds now (its active adapters' virtual tokens; 0 when disabled), duck-typed on @tfjs-peft/prompt. */
function activeRows(layer: tfl.layers.Layer | undefined): number {
  const rows = (layer as unknown as { activeRows?: () => number } | undefined)?.activeRows;
  return typeof rows === 'function' ? rows.call(layer) : 0;
}

/** Weights computed from the layer's input after another of its trainable products (LoRA's B, an adapter's up projection). */
function isSecondStage(weightName: string): boolean {
  return /lora_B|up_kernel/.test(weightName);
}

function uniqueWeights(layer: tfl.layers.Layer): tfl.LayerVariable[] {
  const seen = new Set<string>();
  const out: tfl.LayerVariable[] = [];
  const candidates = [...layer.weights];
  // Wrappers (LoRA, IA³, BitFit, ModulesToSave) keep the wrapped layer in a field; its kernel is the frozen base product.
  const holder = layer as unknown as { base?: tfl.layers.Layer; baseLayer?: tfl.layers.Layer };
  for (const wrapped of [holder.base, holder.baseLayer]) {
    if (wrapped && layer.getClassName() !== 'ModulesToSaveWrapper' && Array.isArray(wrapped.weights))
      candidates.push(...wrapped.weights);
  }
  for (const w of candidates) {
    const id = String((w as unknown as { id: number }).id ?? w.name);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(w);
  }
  return out;
}

export function countFlops(model: tfl.LayersModel, batch: number, length: number): FlopCount {
  const products: ProductCount[] = [];
  /** Layers whose output depends on a trainable weight (the gradient must reach through them). */
  const dependsOnTrainable = new Set<tfl.layers.Layer>();
  /** Sequence length of each layer's output (longer than `length` after prompt tuning's virtual tokens). */
  const sequence = new Map<tfl.layers.Layer, number>();
  const seqOf = (l: tfl.layers.Layer | undefined) => (l ? (sequence.get(l) ?? length) : length);
  const promptLayer = model.layers.find((l) => l.getClassName() === 'PromptEmbedding');
  // Prefix tuning: the prefix layers share one parameter set, held (and reported as trainable) by one of them.
  const prefixTrainable = model.layers.some(
    (l) => l.getClassName() === 'PrefixAttention' && l.trainable && l.trainableWeights.length > 0,
  );
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const node = nodeOf(layer);
    const inputDepends = node.inboundLayers.map((l) => dependsOnTrainable.has(l));
    const anyInputDepends = inputDepends.some(Boolean);
    const weights = uniqueWeights(layer);
    const layerTrainable = layer.trainable && weights.some((w) => w.trainable);
    const inputLength = seqOf(node.inboundLayers[0]);
    sequence.set(layer, Math.max(inputLength, ...node.inboundLayers.map(seqOf)));
    if (cls === 'PromptEmbedding') sequence.set(layer, inputLength + activeRows(layer));
    if (cls === 'PromptAttentionMask') sequence.set(layer, inputLength + activeRows(promptLayer));
    if (ATTENTION.has(cls)) {
      const width = node.inputTensors[0].shape[2] as number;
      const prefix = cls === 'PrefixAttention' ? activeRows(layer) : 0;
      const trainablePrefix = prefix > 0 && prefixTrainable;
      const queries = inputLength;
      const realKeys = seqOf(node.inboundLayers[1]);
      const keys = realKeys + prefix;
      sequence.set(layer, queries);
      const perRow = 2 * batch * queries * width; // one key/value row's share of a product
      const once = perRow * keys;
      const [dq, dk, dv] = inputDepends;
      // Forward: S = Q·Kᵀ, O = P·V. Backward: dP = dO·Vᵀ (when Q, K or a trainable prefix needs dS),
      // dV = Pᵀ·dO and dK = dSᵀ·Q for the rows that need them (real rows when the input depends on a
      // trainable weight, the prefix rows when the prefix trains), dQ = dS·K.
      const gradRows = (real: boolean) => (real ? realKeys : 0) + (trainablePrefix ? prefix : 0);
      const backward =
        (dq || dk || trainablePrefix ? once : 0) +
        perRow * gradRows(dv) +
        (dq ? once : 0) +
        perRow * gradRows(dk);
      products.push({
        layer: layer.name,
        weight: prefix ? `(attention QKᵀ, PV; ${prefix} prefix keys/values)` : '(attention QKᵀ, PV)',
        mkn: [batch * queries, width, keys],
        forward: 2 * once,
        backward,
      });
      // Its output depends on the trainable prefix (the non-owning prefix layers report no weights of their own).
      if (trainablePrefix) dependsOnTrainable.add(layer);
    } else if (!NOT_PRODUCTS.has(cls)) {
      // A ModulesToSave wrapper holds the original and the trained copy: only the trained copy runs.
      const matrices = weights.filter(
        (w) => w.shape.length === 2 && (cls !== 'ModulesToSaveWrapper' || w.trainable),
      );
      const shape = node.inputTensors[0].shape;
      for (const w of matrices) {
        const [k, n] = w.shape as [number, number];
        const m = rows(shape, batch, inputLength);
        const once = 2 * m * k * n;
        const trainable = w.trainable && layer.trainable;
        const needsDx = anyInputDepends || (isSecondStage(w.name) && layerTrainable);
        products.push({
          layer: layer.name,
          weight: w.name,
          mkn: [m, k, n],
          forward: once,
          backward: (trainable ? once : 0) + (needsDx ? once : 0),
        });
      }
    }
    if (layerTrainable || anyInputDepends) dependsOnTrainable.add(layer);
  }
  const forward = products.reduce((s, p) => s + p.forward, 0);
  const backward = products.reduce((s, p) => s + p.backward, 0);
  return { forward, step: forward + backward, products };
}
