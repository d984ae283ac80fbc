// TypeDoc plugin for `pnpm docs:api`: leaves out the class members our layers inherit unchanged from
// tfjs (`apply`, `build`, `countParams`, … of tf.layers.Layer), which tfjs documents itself: members
// declared or overridden in this repository's sources are kept. Protected and private members are left
// out by typedoc.json.
import { Converter, ReflectionKind } from 'typedoc';

/** Inherited, not overridden, from a class declared in a dependency (tfjs). */
const inheritedFromDependency = (reflection) => {
  const from = reflection.inheritedFrom;
  if (!from || reflection.overwrites) return false;
  return (from.package ?? '').startsWith('@tensorflow/') || !from.reflection;
};

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const { project } = context;
    for (const reflection of Object.values(project.reflections)) {
      if (reflection.kindOf(ReflectionKind.ClassMember) && reflection.parent?.kindOf(ReflectionKind.Class) && inheritedFromDependency(reflection)) {
        project.removeReflection(reflection);
      }
    }
  });
}
