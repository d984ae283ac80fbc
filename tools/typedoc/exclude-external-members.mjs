// TypeDoc plugin for `pnpm docs:api` (typedoc.json):
// - names each entry point's module after its package (`@tfjs-peft/core`, not `peft-core/src`);
// - leaves out the class members our layers inherit unchanged from tfjs (`apply`, `build`,
//   `countParams`, … of tf.layers.Layer), which tfjs documents itself: members declared or overridden
//   in this repository's sources are kept. Protected and private members are left out by typedoc.json.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Converter, ReflectionKind } from 'typedoc';

/** Inherited, not overridden, from a class declared in a dependency (tfjs). */
const inheritedFromDependency = (reflection) => {
  const from = reflection.inheritedFrom;
  if (!from || reflection.overwrites) return false;
  return (from.package ?? '').startsWith('@tensorflow/') || !from.reflection;
};

/** `name` of packages/<dir>/package.json, for the module typedoc names `<dir>/src` (or `packages/<dir>/src`). */
function packageName(moduleName) {
  const dir = /(?:^|\/)([a-z0-9-]+)\/src(?:\/index)?$/.exec(moduleName)?.[1];
  if (!dir) return undefined;
  try {
    return JSON.parse(readFileSync(path.join(root, 'packages', dir, 'package.json'), 'utf8')).name;
  } catch {
    return undefined;
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const { project } = context;
    for (const module of project.children ?? []) {
      const name = module.kindOf(ReflectionKind.Module) ? packageName(module.name) : undefined;
      if (name) module.name = name;
    }
    for (const reflection of Object.values(project.reflections)) {
      if (reflection.kindOf(ReflectionKind.ClassMember) && reflection.parent?.kindOf(ReflectionKind.Class) && inheritedFromDependency(reflection)) {
        project.removeReflection(reflection);
      }
    }
  });
}
