import { visit, printParseErrorCode } from 'jsonc-parser';

/**
 * The keys that occur more than once in one JSON object anywhere in `text`,
 * as `path.key` (JSON.parse silently keeps the last of them). Throws when the
 * text is not strict JSON (comments and trailing commas included).
 */
export function duplicateJsonKeys(text: string): string[] {
  const stack: Array<{ path: string; keys: Set<string> }> = [];
  const dups: string[] = [];
  const errors: string[] = [];
  let lastKey = '';
  visit(
    text,
    {
      onObjectBegin: () => {
        const parent = stack[stack.length - 1];
        stack.push({ path: parent ? `${parent.path}${lastKey}.` : '', keys: new Set() });
      },
      onObjectProperty: (key) => {
        const top = stack[stack.length - 1]!;
        if (top.keys.has(key)) dups.push(`${top.path}${key}`);
        top.keys.add(key);
        lastKey = key;
      },
      onObjectEnd: () => void stack.pop(),
      onArrayBegin: () => {
        lastKey = `${lastKey}[]`;
      },
      onComment: (offset) => errors.push(`comment at ${offset}`),
      onError: (error, offset) => errors.push(`${printParseErrorCode(error)} at ${offset}`),
    },
    { allowTrailingComma: false, disallowComments: true },
  );
  if (errors.length > 0) throw new Error(`not strict JSON: ${errors.join(', ')}: ${text.slice(0, 200)}`);
  return dups;
}
