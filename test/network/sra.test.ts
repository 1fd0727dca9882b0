import { describe, expect, it } from '@jest/globals';
import { locateUrl, parseLocate } from '../../src/tools/sra.js';

const RUN = 'SRR000123';
const answer = (entry: object) => JSON.stringify({ version: '2', result: [entry] });

describe('SRA Data Locator', () => {
  it('builds <locate>?acc=<RUN>&filetype=run', () => {
    const u = new URL(locateUrl('https://locate.ncbi.nlm.nih.gov/sdl/2/retrieve', RUN));
    expect(u.pathname).toBe('/sdl/2/retrieve');
    expect(u.searchParams.get('acc')).toBe(RUN);
    expect(u.searchParams.get('filetype')).toBe('run');
  });

  it('turns a found run into one <RUN>.sra file with size and md5', () => {
    const a = parseLocate(
      answer({ bundle: RUN, status: 200, files: [{ type: 'sra', name: RUN, size: 1234, md5: 'AB'.repeat(16), locations: [{ service: 's3', link: 'https://h/sra/SRR000123/SRR000123' }] }] }),
      RUN,
    );
    expect(a).toEqual({
      found: true, file: { url: 'https://h/sra/SRR000123/SRR000123', name: `${RUN}.sra`, bytes: 1234, md5: 'ab'.repeat(16), mate: 0 },
      noqual: false, remoteName: RUN, service: 's3',
    });
  });

  it('reads a per-run status other than 200 as not found, with the message', () => {
    const a = parseLocate(answer({ bundle: RUN, status: 404, msg: 'No data at given location.' }), RUN);
    expect(a).toEqual({ found: false, answer: 'status 404 (No data at given location.)' });
  });

  it('reads a 200 without any http(s) link as not found', () => {
    const a = parseLocate(answer({ bundle: RUN, status: 200, files: [{ type: 'sra', name: RUN, size: 1, locations: [] }] }), RUN);
    expect(a.found).toBe(false);
  });

  it('throws on a body that is not JSON', () => {
    expect(() => parseLocate('<html>oops</html>', RUN)).toThrow(/not JSON/);
  });
});
