import { isMap } from 'yaml';
import { isNameLabel } from '../hostname.js';
import type { Diagnostic, ProfileFile, ProjectConfig, RouteMode, WritePolicy } from './schema.js';
import { scalarString } from './validate-config.js';
import { didYouMean, entries, parseYamlMap } from './yaml-source.js';

/** Every top-level key a profile file may hold; others are warned about (and kept by `use`). */
export const PROFILE_KEYS: readonly string[] = ['profile', 'name', 'services', 'writes'];
const ROUTE_MODES: readonly RouteMode[] = ['local', 'remote'];

export interface ProfileValidation {
  profile?: ProfileFile;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/**
 * Validates the text of a worktree's `.devproxy/profile.yaml` against the project's config.
 * Pure. The profile must exist in the config, and every override must name a service that can
 * be routed that way.
 */
export function validateProfile(text: string, file: string, config: ProjectConfig): ProfileValidation {
  const root = parseYamlMap(text, file, 'the profile file');
  if ('diagnostics' in root) return { errors: root.diagnostics, warnings: [] };
  const source = root.source;

  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const fields = new Map(entries(root.map).map((e) => [e.key, e]));
  for (const { key, pair } of fields.values()) {
    if (PROFILE_KEYS.includes(key)) continue;
    const suggestion = didYouMean(key, PROFILE_KEYS);
    warnings.push(source.problem(pair, key, `unknown key "${key}" is ignored`, suggestion ? `did you mean "${suggestion}"?` : `known keys: ${PROFILE_KEYS.join(', ')}`));
  }

  const profileEntry = fields.get('profile');
  const profileName = scalarString(profileEntry?.value) ?? '';
  if (!profileEntry) {
    errors.push(source.problem(root.map, 'profile', 'the file names no profile', `add \`profile: <name>\` (one of: ${[...config.profiles.keys()].join(', ')})`));
  } else if (!config.profiles.has(profileName)) {
    const suggestion = didYouMean(profileName, config.profiles.keys());
    errors.push(
      source.problem(
        profileEntry.value,
        'profile',
        `unknown profile "${profileName}"`,
        `${suggestion ? `did you mean "${suggestion}"? ` : ''}profiles in devproxy.yaml: ${[...config.profiles.keys()].join(', ')}`,
      ),
    );
  }

  let name: string | undefined;
  const nameEntry = fields.get('name');
  if (nameEntry) {
    name = scalarString(nameEntry.value);
    if (name === undefined || !isNameLabel(name)) {
      errors.push(source.problem(nameEntry.value, 'name', `"${name ?? ''}" cannot be used in a hostname`, 'use lower-case letters, digits and hyphens, e.g. `name: feature-x`'));
    }
  }

  const services = new Map<string, RouteMode>();
  const servicesEntry = fields.get('services');
  if (servicesEntry) {
    if (!isMap(servicesEntry.value)) {
      errors.push(source.problem(servicesEntry.value, 'services', 'services must map a service to local or remote', 'write e.g. `services: { api: local, db: remote }`'));
    } else {
      for (const { key, pair, value } of entries(servicesEntry.value)) {
        const field = `services.${key}`;
        const service = config.services.get(key);
        if (!service) {
          const suggestion = didYouMean(key, config.services.keys());
          errors.push(source.problem(pair, field, `unknown service "${key}"`, suggestion ? `did you mean "${suggestion}"?` : `services in devproxy.yaml: ${[...config.services.keys()].join(', ')}`));
          continue;
        }
        const mode = scalarString(value) as RouteMode | undefined;
        if (mode === undefined || !ROUTE_MODES.includes(mode)) {
          errors.push(source.problem(value, field, `"${mode ?? ''}" is not a route`, 'write `local` or `remote`'));
          continue;
        }
        if (mode === 'local' && !service.local) {
          errors.push(source.problem(value, field, `service "${key}" has no local definition`, `add \`local:\` to services.${key} in devproxy.yaml, or route it remote`));
          continue;
        }
        if (mode === 'remote' && !service.remote) {
          errors.push(source.problem(value, field, `service "${key}" has no remote endpoint`, `add \`remote: <url>\` to services.${key} in devproxy.yaml, or route it local`));
          continue;
        }
        services.set(key, mode);
      }
    }
  }

  const writes = new Map<string, WritePolicy>();
  const writesEntry = fields.get('writes');
  if (writesEntry) {
    if (!isMap(writesEntry.value)) {
      errors.push(source.problem(writesEntry.value, 'writes', 'writes must map a service to read-write or read-only', 'write e.g. `writes: { api: read-write }` to allow writes from this worktree'));
    } else {
      for (const { key, pair, value } of entries(writesEntry.value)) {
        const policy = scalarString(value);
        if (!config.services.has(key)) errors.push(source.problem(pair, `writes.${key}`, `unknown service "${key}"`, `services in devproxy.yaml: ${[...config.services.keys()].join(', ')}`));
        else if (policy !== 'read-write' && policy !== 'read-only') errors.push(source.problem(value, `writes.${key}`, `"${policy ?? ''}" is not a write policy`, 'write `read-write` or `read-only`'));
        else writes.set(key, policy);
      }
    }
  }

  if (errors.length > 0) return { errors, warnings };
  return { profile: { profile: profileName, ...(name ? { name } : {}), services, ...(writes.size > 0 ? { writes } : {}) }, errors, warnings };
}
