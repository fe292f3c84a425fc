import { Document, YAMLMap, isMap, isScalar, parseDocument } from 'yaml';
import type { RouteMode } from './schema.js';

/** First line of a profile file devproxy creates; hand-written files keep their own. */
const PROFILE_HEADER = ' devproxy live profile: edit by hand or with `devproxy use <profile>`; applied at once.';

/** What `use` and `new` change in a profile file; every other key stays as it is. */
export interface ProfileChange {
  profile: string;
  /** Sets `name:`; absent: an existing `name:` stays. */
  name?: string;
  /** The complete set of per-service overrides after the change (empty or absent: no `services:` key). */
  services?: ReadonlyMap<string, RouteMode>;
}

/**
 * The text of a profile file after `change`, edited in place through the YAML document so every
 * key the change does not name (`writes:`, `name:`, keys of a newer devproxy), comments and
 * formatting survive. Pure. `current` is the file's text, or null when there is none; a file
 * that is not a YAML mapping (the daemon already rejects it) is replaced by a fresh one.
 */
export function editProfileText(current: string | null, change: ProfileChange): string {
  const doc = editableDocument(current);
  const root = doc.contents as YAMLMap;
  setScalar(root, 'profile', change.profile);
  if (change.name !== undefined) setScalar(root, 'name', change.name);
  const services = change.services ?? new Map<string, RouteMode>();
  if (services.size === 0) {
    root.delete('services');
  } else {
    const existing: unknown = root.get('services', true);
    let overrides: YAMLMap;
    if (isMap(existing)) overrides = existing;
    else root.set('services', (overrides = new YAMLMap()));
    for (const pair of [...overrides.items]) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!services.has(key)) overrides.delete(pair.key);
    }
    for (const [service, mode] of services) setScalar(overrides, service, mode);
  }
  return doc.toString();
}

function editableDocument(current: string | null): Document {
  if (current !== null) {
    const doc = parseDocument(current);
    if (doc.errors.length === 0 && isMap(doc.contents)) return doc;
  }
  const root = new YAMLMap();
  root.commentBefore = PROFILE_HEADER;
  const doc = new Document(root);
  return doc;
}

/** Sets `key` to `value`, keeping the existing scalar node (and its comment) when there is one. */
function setScalar(map: YAMLMap, key: string, value: string): void {
  const node = map.get(key, true);
  if (isScalar(node)) node.value = value;
  else map.set(key, value);
}
