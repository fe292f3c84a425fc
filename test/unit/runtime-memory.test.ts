import { describe, expect, it } from 'vitest';
import type { ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { availableMemoryBytes, checkMemoryBudget, declaredMemoryBytes, formatMemory } from '../../runtime/memory.js';

const MB = 1024 * 1024;
const GB = 1024 * MB;

const config: ProjectConfig = (() => {
  const memory = { ui: '256MB', api: '512MB', pipeline: '6GB', service: '1.5GB', db: '2GB' };
  const services: Record<string, unknown> = { docs: { remote: 'https://docs.example.test' } };
  for (const [name, m] of Object.entries(memory)) services[name] = { remote: `https://${name}.example.test`, memory: m };
  const result = validateConfig(JSON.stringify({ name: 'contoso', services }), 'devproxy.yaml');
  if (!result.config) throw new Error(JSON.stringify(result.errors));
  return result.config;
})();

describe('memory budgets', () => {
  it('sums the declared memory of the named services, once each, unknown or undeclared as 0', () => {
    expect(declaredMemoryBytes(config, ['ui', 'api'])).toBe(768 * MB);
    expect(declaredMemoryBytes(config, ['ui', 'ui', 'docs', 'nope'])).toBe(256 * MB);
    expect(declaredMemoryBytes(config, ['ui', 'api', 'pipeline', 'service', 'db'])).toBe(9.5 * GB + 768 * MB);
  });

  it('flags a start that does not fit in the available memory', () => {
    expect(checkMemoryBudget(config, ['pipeline'], 4 * GB)).toEqual({ declaredBytes: 6 * GB, availableBytes: 4 * GB, exceeds: true });
    expect(checkMemoryBudget(config, ['ui'], 4 * GB).exceeds).toBe(false);
    expect(checkMemoryBudget(config, [], 0).exceeds).toBe(false);
  });

  it.each([
    [248 * MB, '248 MB'],
    [10.5 * GB, '10.5 GB'],
    [1 * GB, '1 GB'],
    [1536, '2 KB'],
    [12, '12 B'],
  ])('formats %d as %s', (bytes, text) => {
    expect(formatMemory(bytes)).toBe(text);
  });

  it('reads a positive available memory figure from this machine', async () => {
    expect(await availableMemoryBytes()).toBeGreaterThan(0);
  });
});
