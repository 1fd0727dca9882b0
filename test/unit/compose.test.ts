// Docker cannot run here; check the compose file parses and carries what fetchquant needs.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTE_NAMES } from '../../src/search-attributes.js';

describe('docker-compose.temporal.yml', () => {
  const doc = parse(readFileSync('docker-compose.temporal.yml', 'utf8'));
  it('has PostgreSQL persistence, the server on 7233 and the Web UI', () => {
    expect(Object.keys(doc.services).sort()).toEqual(['fetchquant-setup', 'postgresql', 'temporal', 'temporal-ui']);
    expect(doc.services.temporal.environment.DB).toBe('postgres12');
    expect(doc.services.temporal.ports).toContain('7233:7233');
    expect(doc.services['temporal-ui'].environment.TEMPORAL_ADDRESS).toBe('temporal:7233');
  });
  it('runs the server version and PostgreSQL schema that scripts/cluster.sh brings up and npm run test:cluster tests', () => {
    const script = readFileSync('scripts/cluster.sh', 'utf8');
    const version = /^VERSION=(\S+)$/m.exec(script)?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(doc.services.temporal.image).toBe(`temporalio/auto-setup:${version}`);
    expect(doc.services['fetchquant-setup'].image).toBe(`temporalio/admin-tools:${version}`);
    // the plugin and schema the script loads (postgresql/v12) and the PostgreSQL major it is tested on (Debian 12's)
    expect(script).toContain('--plugin postgres12');
    expect(script).toContain('--schema-name "postgresql/v12/$name"');
    expect(doc.services.temporal.environment.DB).toBe('postgres12');
    expect(doc.services.postgresql.image).toBe('postgres:15');
  });
  it('registers every search attribute of the spec and raises retention', () => {
    const script = doc.services['fetchquant-setup'].entrypoint.join(' ');
    for (const sa of SEARCH_ATTRIBUTE_NAMES) expect(script).toContain(sa);
    expect(script).toContain('--retention 720h');
  });
});
