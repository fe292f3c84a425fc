import { LineCounter, isMap, isScalar, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { Diagnostic } from './schema.js';

/** A parsed YAML file that can say where any of its nodes stands. */
export interface YamlSource {
  file: string;
  doc: Document.Parsed;
  /** Reports a problem at `node` (or at the file when the node is absent). */
  problem(node: Node | Pair | null | undefined, field: string | undefined, message: string, hint: string): Diagnostic;
}

/**
 * Parses `text` keeping positions. Syntax errors come back as diagnostics with their own line;
 * `source` is undefined when the document is unusable (syntax error or empty).
 */
export function parseYamlSource(text: string, file: string): { source?: YamlSource; diagnostics: Diagnostic[] } {
  const lineCounter = new LineCounter();
  // The library's own duplicate-key check compares every key with every other (quadratic: a
  // 228 KB file of keys froze the daemon for 1.8 s); duplicateKeys() below does it with a Set.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number | undefined): { line: number; column: number } => {
    if (offset === undefined) return { line: 0, column: 0 };
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const source: YamlSource = {
    file,
    doc,
    problem(node, field, message, hint) {
      const range = node && 'range' in node ? node.range : node && 'key' in node ? (node.key as Node | null)?.range : undefined;
      return { file, ...at(range?.[0]), ...(field ? { field } : {}), message, hint };
    },
  };
  const errors = [...doc.errors.map((error) => ({ offset: error.pos[0], message: firstLine(error.message) })), ...duplicateKeys(doc)];
  if (errors.length > 0) {
    return {
      diagnostics: errors.map((error) => ({
        file,
        ...at(error.offset),
        message: `YAML syntax error: ${error.message}`,
        hint: 'fix the YAML syntax at this line (indentation, a missing colon or quote)',
      })),
    };
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return { diagnostics: [source.problem(undefined, undefined, 'the file is empty', 'write the settings the file needs (see the README for an example)')] };
  }
  return { source, diagnostics: [] };
}

/** Keys that repeat within one mapping, in linear time (scalar keys; others compare by source text). */
function duplicateKeys(doc: Document.Parsed): Array<{ offset: number | undefined; message: string }> {
  const found: Array<{ offset: number | undefined; message: string }> = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : String(pair.key);
        if (seen.has(key)) found.push({ offset: (pair.key as Node | null)?.range?.[0], message: 'Map keys must be unique' });
        seen.add(key);
      }
    },
  });
  return found;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/**
 * Parses a file whose document must be a mapping (both devproxy files are): the source and its
 * root map, or the diagnostics saying why there is none (syntax, empty, not a mapping).
 */
export function parseYamlMap(text: string, file: string, what: string): { source: YamlSource; map: YAMLMap } | { diagnostics: Diagnostic[] } {
  const parsed = parseYamlSource(text, file);
  if (!parsed.source) return { diagnostics: parsed.diagnostics };
  const contents = parsed.source.doc.contents;
  if (isMap(contents)) return { source: parsed.source, map: contents };
  return {
    diagnostics: [parsed.source.problem(contents, undefined, `${what} must be a mapping of keys to values`, 'start the file with `key: value` lines (see the README for an example)')],
  };
}

/** The pairs of a map with string keys, in source order. */
export function entries(map: YAMLMap): Array<{ key: string; pair: Pair; value: Node | null }> {
  return map.items.map((pair) => ({
    key: isScalar(pair.key) ? String(pair.key.value) : String(pair.key),
    pair,
    value: (pair.value ?? null) as Node | null,
  }));
}

/** The closest of `candidates` to `word` by edit distance, when it is plausibly a typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Optimal-string-alignment distance: edits, with a swap of neighbours (`prot` → `port`) counting one. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}
