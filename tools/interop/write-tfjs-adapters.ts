// Writes LoRA adapters with tfjs-peft for the reverse interop check (Hugging Face PEFT loads what we
// write). From the repository root:
//
//   node --conditions=@tfjs-peft/source --import tsx tools/interop/write-tfjs-adapters.ts
//   for d in fixtures/tfjs-written/*/ ; do ... check_tfjs_adapter.py fixtures/lora-mlp $d ; done
//     (tools/interop/check-tfjs-adapters.sh runs the checks and writes the transcript)
//
// On a PEFT fixture's base (lora-mlp, lora-conv or lora-embedding; torch weights, tfjs layout) it applies our LoRA with
// initLoraWeights: false (random A and B, so the adapter is not a no-op), saves each adapter folder
// with saveAdapter('file://…') into fixtures/tfjs-written/<name>/, and writes expected_outputs.json
// (our outputs on the fixture's inputs, cpu backend) next to each adapter_config.json:
//   { adapter_outputs, merged_outputs }            the folder's own adapter, active alone
//   + peft_disabled_outputs when the adapter trains biases: PEFT's disable_adapter() keeps them
//     (they live in its base layers), so it computes the base with our biases and no LoRA delta
//   + in the root: fixture, adapters, outputs_by_active (every active set, e.g. "default+other")
// Math.random is replaced by a seeded generator first, so tfjs's unseeded initialisers and hence the
// written files are the same on every run.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';

let seed = 0x2f6b_a11e;
Math.random = () => {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

// The repository root has no "type": "module", so tsx runs this file as CommonJS.
const root = path.resolve(__dirname, '../..');
// tfjs and its cpu backend as the packages resolve them (the root has no tfjs of its own).
const requireFromTestUtils = createRequire(path.join(root, 'packages/test-utils/package.json'));
requireFromTestUtils('@tensorflow/tfjs-backend-cpu');
const tf = requireFromTestUtils('@tensorflow/tfjs-core') as typeof import('@tensorflow/tfjs-core');

type LoraModule = typeof import('../../packages/peft-lora/src/index.ts');
type Options = ConstructorParameters<LoraModule['LoraConfig']>[0];
const OUT = path.join(root, 'fixtures/tfjs-written');

interface Spec {
  name: string;
  /** The PEFT fixture whose base and inputs are used; lora-mlp unless given. */
  fixture?: string;
  perturbMagnitude?: boolean;
  /** Shift the trained biases by U(-0.5, 0.5) before saving (a new bias adapter leaves them as they were). */
  perturbBiases?: boolean;
  adapters: Array<{ name: string; options: Options }>;
}

const specs: Spec[] = [
  {
    name: 'lora-r4',
    adapters: [
      {
        name: 'default',
        options: { r: 4, loraAlpha: 8, targetModules: ['fc1', 'fc2'], initLoraWeights: false },
      },
    ],
  },
  {
    name: 'lora-rslora',
    adapters: [
      {
        name: 'default',
        options: {
          r: 4,
          loraAlpha: 8,
          useRslora: true,
          targetModules: ['fc1', 'fc2'],
          initLoraWeights: false,
        },
      },
    ],
  },
  {
    name: 'lora-two-adapters',
    adapters: [
      {
        name: 'default',
        options: { r: 4, loraAlpha: 8, targetModules: ['fc1', 'fc2'], initLoraWeights: false },
      },
      // A different rank and a different set of targets, the output head included.
      {
        name: 'other',
        options: { r: 2, loraAlpha: 8, targetModules: ['fc1', 'head'], initLoraWeights: false },
      },
    ],
  },
  {
    // DoRA: the magnitude starts as the column norms of W + s·A·B (then DoRA == LoRA), so it is
    // scaled by U(0.5, 1.5) before saving, as the PEFT fixture lora-mlp-dora does.
    name: 'lora-dora',
    perturbMagnitude: true,
    adapters: [
      {
        name: 'default',
        options: { r: 4, loraAlpha: 8, useDora: true, targetModules: ['fc1', 'fc2'], initLoraWeights: false },
      },
    ],
  },
  {
    // Conv2D LoRA: A a 3×3 conv [3, 3, in, r], B a 1×1 conv — saved OIHW as PEFT's Conv2d.
    name: 'lora-conv',
    fixture: 'lora-conv',
    adapters: [
      {
        name: 'default',
        options: { r: 2, loraAlpha: 4, targetModules: ['conv1', 'conv2'], initLoraWeights: false },
      },
    ],
  },
  {
    // Embedding LoRA: lora_embedding_A [r, vocab], lora_embedding_B [dim, r], no `.weight`.
    name: 'lora-embedding',
    fixture: 'lora-embedding',
    adapters: [
      { name: 'default', options: { r: 3, loraAlpha: 6, targetModules: ['embed'], initLoraWeights: false } },
    ],
  },
  {
    // bias 'all': fc1/fc2 biases as <module>.base_layer.bias, head's (no LoRA) as head.bias.
    name: 'lora-bias-all',
    perturbBiases: true,
    adapters: [
      {
        name: 'default',
        options: { r: 4, loraAlpha: 8, bias: 'all', targetModules: ['fc1', 'fc2'], initLoraWeights: false },
      },
    ],
  },
  {
    // bias 'loraOnly' on Conv2D: conv1/conv2 biases as <module>.base_layer.bias; head's stays frozen.
    name: 'lora-conv-bias-lora-only',
    fixture: 'lora-conv',
    perturbBiases: true,
    adapters: [
      {
        name: 'default',
        options: {
          r: 2,
          loraAlpha: 4,
          bias: 'loraOnly',
          targetModules: ['conv1', 'conv2'],
          initLoraWeights: false,
        },
      },
    ],
  },
];

async function main() {
  const { getPeftModel, parseSafetensors } = await import('../../packages/peft-core/src/index.ts');
  const { LoraConfig } = await import('../../packages/peft-lora/src/index.ts');
  const { readTorchFixture, buildTfjsModelFromFixture, fixtureInputs } = await import(
    '../../packages/test-utils/src/torch-fixtures.ts'
  );
  await tf.setBackend('cpu');
  await tf.ready();
  type Fixture = ReturnType<typeof readTorchFixture>;

  async function outputs(fixture: Fixture, model: { predict(x: unknown): unknown }): Promise<number[][]> {
    const x = fixtureInputs(fixture);
    const y = model.predict(x) as import('@tensorflow/tfjs-core').Tensor;
    const values = (await y.array()) as number[][];
    tf.dispose([x, y]);
    return values;
  }

  const round = (rows: number[][]) => rows.map((r) => r.map((v) => Math.fround(v)));

  fs.mkdirSync(OUT, { recursive: true });
  // Replace the adapter folders; keep other files (peft-check-transcript.txt).
  for (const entry of fs.readdirSync(OUT, { withFileTypes: true }))
    if (entry.isDirectory()) fs.rmSync(path.join(OUT, entry.name), { recursive: true, force: true });
  for (const spec of specs) {
    const fixtureName = spec.fixture ?? 'lora-mlp';
    const fixture = readTorchFixture(path.join(root, 'fixtures', fixtureName));
    const base = buildTfjsModelFromFixture(fixture);
    const [first, ...rest] = spec.adapters;
    const peft = getPeftModel(base, new LoraConfig(first.options), first.name);
    for (const a of rest) peft.addAdapter(a.name, new LoraConfig(a.options));
    if (spec.perturbMagnitude) {
      for (const layer of peft.peftLayers()) {
        for (const v of layer.weights.filter((w) => w.name.includes('lora_magnitude'))) {
          const factor = tf.randomUniform(v.shape, 0.5, 1.5);
          const scaled = tf.mul(v.read(), factor);
          v.write(scaled);
          tf.dispose([factor, scaled]);
        }
      }
    }
    if (spec.perturbBiases) {
      for (const v of peft.model.trainableWeights.filter((w) => w.originalName.endsWith('/bias'))) {
        const shift = tf.randomUniform(v.shape, -0.5, 0.5);
        const shifted = tf.add(v.read(), shift);
        v.write(shifted);
        tf.dispose([shift, shifted]);
      }
    }

    const activeSets = [
      ...spec.adapters.map((a) => [a.name]),
      ...(spec.adapters.length > 1 ? [spec.adapters.map((a) => a.name)] : []),
    ];
    const byActive: Record<string, number[][]> = {};
    const mergedByActive: Record<string, number[][]> = {};
    for (const active of activeSets) {
      peft.setAdapter(active);
      byActive[active.join('+')] = round(await outputs(fixture, peft.model));
      await peft.mergeAdapter();
      mergedByActive[active.join('+')] = round(await outputs(fixture, peft.model));
      peft.unmergeAdapter();
    }
    peft.setAdapter(first.name);

    const dir = path.join(OUT, spec.name);
    await peft.saveAdapter(`file://${dir}`);
    // PEFT's disabled adapter: the base with the saved biases written in, no LoRA delta.
    let peftDisabled: number[][] | undefined;
    if (spec.perturbBiases) {
      const file = parseSafetensors(
        new Uint8Array(fs.readFileSync(path.join(dir, 'adapter_model.safetensors'))),
      );
      const withBiases = buildTfjsModelFromFixture(fixture);
      for (const [key, t] of file.tensors) {
        if (!key.endsWith('.bias')) continue;
        const module = key.replace(/^base_model\.model\./, '').replace(/(\.base_layer)?\.bias$/, '');
        const variable = withBiases.getLayer(module).weights.find((w) => w.originalName.endsWith('/bias'))!;
        const value = tf.tensor(t.data, t.shape);
        variable.write(value);
        value.dispose();
      }
      peftDisabled = round(await outputs(fixture, withBiases));
      withBiases.dispose();
    }
    const subfolder = (name: string) => (name === 'default' ? null : name);
    for (const a of spec.adapters) {
      const own = {
        fixture: fixtureName,
        adapter: a.name,
        written_by: 'tools/interop/write-tfjs-adapters.ts (tfjs-peft, cpu backend)',
        adapter_outputs: byActive[a.name],
        merged_outputs: mergedByActive[a.name],
        ...(peftDisabled ? { peft_disabled_outputs: peftDisabled } : {}),
      };
      const json =
        a === first
          ? {
              ...own,
              adapters: spec.adapters.map((b) => ({ name: b.name, subfolder: subfolder(b.name) })),
              outputs_by_active: byActive,
              merged_outputs_by_active: mergedByActive,
            }
          : own;
      const folder = subfolder(a.name) ? path.join(dir, a.name) : dir;
      fs.writeFileSync(path.join(folder, 'expected_outputs.json'), JSON.stringify(json, null, 2) + '\n');
    }
    console.log(`wrote ${path.relative(root, dir)}: adapters ${spec.adapters.map((a) => a.name).join(', ')}`);
    peft.unload();
    base.dispose();
  }
  console.log(`live tensors at the end: ${tf.memory().numTensors}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
