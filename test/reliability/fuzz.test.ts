import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseHost } from '../../hostname.js';
import type { Diagnostic } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { tally } from './tally.js';

/**
 * Property-based tests of what parses untrusted text: the config and profile validators (any
 * YAML-ish text, any structured document) and the Host parser. They never throw, and every
 * rejection says where (file, line ≥ 0) and how to fix it.
 */
const configFuzz = tally('fuzz-config');
const profileFuzz = tally('fuzz-profile');
const hostFuzz = tally('fuzz-host');

const CONFIG_FILE = '/repo/devproxy.yaml';
const PROFILE_FILE = '/wt/.devproxy/profile.yaml';
const RUNS = 400;

const CONFIG = validateConfig(
  `name: contoso
services:
  ui: { local: { port: 3000 }, remote: https://ui-dev.example.com }
  api: { local: { command: "npm run dev", port: 8080 }, remote: https://api-dev.example.com/v1, health: /healthz, memory: 512MB }
  cosmos: { remote: { url: https://cosmos-dev.example.com, insecure: true } }
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`,
  CONFIG_FILE,
).config!;

function assertWellFormed(diagnostics: Diagnostic[], file: string): void {
  for (const d of diagnostics) {
    expect(d.file).toBe(file);
    expect(Number.isInteger(d.line) && d.line >= 0, `line of ${JSON.stringify(d)}`).toBe(true);
    expect(Number.isInteger(d.column) && d.column >= 0, `column of ${JSON.stringify(d)}`).toBe(true);
    expect(typeof d.message === 'string' && d.message.length > 0, `message of ${JSON.stringify(d)}`).toBe(true);
    expect(typeof d.hint === 'string' && d.hint.length > 0, `hint of ${JSON.stringify(d)}`).toBe(true);
  }
}

/** Fragments real files are made of, so random text often gets past the YAML parser. */
const yamlToken = fc.constantFrom(
  'name:', 'services:', 'profiles:', 'default:', 'local:', 'remote:', 'port:', 'compose:', 'command:', 'health:', 'memory:',
  'insecure:', 'ca:', 'url:', 'auth:', 'headers:', 'writes:', 'cors:', 'wake:', 'fallback:', 'env:', 'profile:',
  'ui', 'api', 'cosmos', 'standard', 'minimal', 'full', 'remote', 'local', 'contoso', '3000', '-1', '99999', '0x10',
  'https://x.example.com', 'http://', '/healthz', '512MB', '6GB', 'true', 'no', 'null', '~', '[', ']', '{', '}', ',',
  '- ', '&a', '*a', '!!binary', '|', '>', '"', "'", '#', '\t', '  ', '\n', '\n  ', '\n    ', ': ', '---', '...', '%YAML 1.2',
  '<<: *a', '\u0000', '\ufeff', 'ä', '${env:X}', '${file:/etc/passwd}', 'read-only', '10s', 'Feature_X',
);
const yamlishText = fc.oneof(
  fc.array(yamlToken, { maxLength: 60 }).map((tokens) => tokens.join(' ')),
  fc.array(yamlToken, { maxLength: 60 }).map((tokens) => tokens.join('')),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
);

/** Structured documents with the right keys and wrong-or-right values of every type. */
const anyValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom('ui', 'api', 'cosmos', 'standard', 'https://x.example.com', '3000', 'local', 'remote', '512MB'),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('local', 'remote', 'port', 'url', 'insecure', 'compose', 'command', 'health', 'ui', 'api'), tie('value'), { maxKeys: 4 }),
  ),
})).value;
const configDocument = fc.record(
  {
    name: anyValue,
    compose: anyValue,
    ca: anyValue,
    services: fc.oneof(anyValue, fc.dictionary(fc.constantFrom('ui', 'api', 'db', 'Bad_Name', ''), anyValue, { maxKeys: 4 })),
    profiles: fc.oneof(anyValue, fc.dictionary(fc.constantFrom('minimal', 'standard', 'remote', 'x'), fc.array(fc.constantFrom('ui', 'api', 'db', 'nope'), { maxLength: 4 }), { maxKeys: 3 })),
    default: anyValue,
  },
  { requiredKeys: [] },
);
const profileDocument = fc.record(
  {
    profile: fc.oneof(anyValue, fc.constantFrom('minimal', 'standard', 'remote', 'nope')),
    name: anyValue,
    services: fc.oneof(anyValue, fc.dictionary(fc.constantFrom('ui', 'api', 'cosmos', 'nope'), fc.oneof(anyValue, fc.constantFrom('local', 'remote')), { maxKeys: 3 })),
    writes: anyValue,
  },
  { requiredKeys: [] },
);

describe('config validator fuzz', () => {
  it(`never throws on YAML-ish text (${RUNS} runs); every error has file, line, message and hint`, () => {
    fc.assert(
      fc.property(yamlishText, (text) => configFuzz.checkSync(() => {
        const result = validateConfig(text, CONFIG_FILE);
        assertWellFormed([...result.errors, ...result.warnings], CONFIG_FILE);
        expect(result.config === undefined || result.errors.length === 0).toBe(true);
        if (result.config === undefined) expect(result.errors.length).toBeGreaterThan(0);
      })),
      { numRuns: RUNS },
    );
  });

  it(`never throws on structured documents (${RUNS} runs); a config comes with no errors, a rejection with at least one`, () => {
    fc.assert(
      fc.property(configDocument, (doc) => configFuzz.checkSync(() => {
        const result = validateConfig(stringify(doc), CONFIG_FILE);
        assertWellFormed([...result.errors, ...result.warnings], CONFIG_FILE);
        expect((result.config === undefined) === result.errors.length > 0).toBe(true);
      })),
      { numRuns: RUNS },
    );
  });
});

describe('profile validator fuzz', () => {
  it(`never throws on YAML-ish text (${RUNS} runs); every error has file, line, message and hint`, () => {
    fc.assert(
      fc.property(yamlishText, (text) => profileFuzz.checkSync(() => {
        const result = validateProfile(text, PROFILE_FILE, CONFIG);
        assertWellFormed([...result.errors, ...result.warnings], PROFILE_FILE);
        if (result.profile !== undefined) expect(CONFIG.profiles.has(result.profile.profile)).toBe(true);
      })),
      { numRuns: RUNS },
    );
  });

  it(`never throws on structured documents (${RUNS} runs); an accepted profile names a known profile and known services`, () => {
    fc.assert(
      fc.property(profileDocument, (doc) => profileFuzz.checkSync(() => {
        const result = validateProfile(stringify(doc), PROFILE_FILE, CONFIG);
        assertWellFormed([...result.errors, ...result.warnings], PROFILE_FILE);
        if (result.profile !== undefined && result.errors.length === 0) {
          expect(CONFIG.profiles.has(result.profile.profile)).toBe(true);
          for (const service of result.profile.services.keys()) expect(CONFIG.services.has(service)).toBe(true);
        }
      })),
      { numRuns: RUNS },
    );
  });
});

describe('Host parser fuzz', () => {
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
  const ourName = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => `${labels.join('.')}.localhost`);

  it(`never throws on any string (${RUNS * 2} runs); an accepted host is lower-case, port-free and within DNS limits`, () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 80 }), ourName), (value) => hostFuzz.checkSync(() => {
        const parsed = parseHost(value);
        if (parsed.ok) {
          expect(parsed.host).toBe(parsed.host.toLowerCase());
          expect(parsed.host).not.toContain(':');
          expect(parsed.host.length).toBeLessThanOrEqual(253);
          expect(parsed.host.endsWith('.')).toBe(false);
          // Parsing its own output gives the same host: the table key is a fixed point.
          expect(parseHost(parsed.host)).toEqual({ ok: true, host: parsed.host });
        } else {
          expect(['missing', 'invalid', 'ip-literal']).toContain(parsed.reason);
        }
      })),
      { numRuns: RUNS * 2 },
    );
  });

  it(`accepted names round-trip with case, a trailing dot and a port (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(ourName, fc.boolean(), fc.boolean(), fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }), (name, upper, dot, port) => hostFuzz.checkSync(() => {
        const written = `${upper ? name.toUpperCase() : name}${dot ? '.' : ''}${port === undefined ? '' : `:${port}`}`;
        const parsed = parseHost(written);
        expect(parsed.ok, written).toBe(true);
        if (parsed.ok) {
          expect(parsed.host).toBe(name);
          expect(parsed.port).toBe(port);
        }
      })),
      { numRuns: RUNS },
    );
  });

  it(`IPv4 literals in every notation are never accepted as names (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), (ip, port) => hostFuzz.checkSync(() => {
        const parsed = parseHost(port === undefined ? ip : `${ip}:${port}`);
        expect(parsed).toEqual({ ok: false, reason: 'ip-literal' });
      })),
      { numRuns: RUNS },
    );
  });
});
