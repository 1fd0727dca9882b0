/**
 * The reads dirs this host has downloaded into, remembered across worker restarts, so the host's janitor
 * sweeps them without being told (the janitor belongs to the host, not to a batch).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stateRoot } from '../state-dir.js';

export class KnownDirs {
  private dirs: Set<string>;
  constructor(private readonly file: string) {
    try {
      this.dirs = new Set(JSON.parse(readFileSync(file, 'utf8')) as string[]);
    } catch {
      this.dirs = new Set();
    }
  }
  static forHost(hostId: string, env = process.env): KnownDirs {
    return new KnownDirs(join(stateRoot(env), 'hosts', hostId, 'reads-dirs.json'));
  }
  add(dir: string): void {
    if (this.dirs.has(dir)) return;
    this.dirs.add(dir);
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.dirs].sort(), null, 1));
    renameSync(tmp, this.file);
  }
  list(): string[] {
    return [...this.dirs];
  }
}
