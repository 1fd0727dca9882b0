/** Shapes of a synthetic dataset (written to <root>/dataset.json). Re-exported by fixtures.ts. */

export interface SyntheticFile {
  name: string;
  /** absolute path on disk */
  path: string;
  bytes: number;
  md5: string;
  /** 1 or 2 for paired mates, 0 for single-end reads, orphan reads and .sra files */
  mate: 0 | 1 | 2;
}

export interface SyntheticRun {
  /** e.g. SRR9000001 (matches ^[SED]RR[0-9]{6,}$) */
  run: string;
  layout: 'single' | 'paired';
  /** spots */
  reads: number;
  /** fragment length used to simulate (paired) or 200 for single */
  nominalLength: number;
  readLength: number;
  /** gzipped: <RUN>.fastq.gz (single) or <RUN>_1.fastq.gz + <RUN>_2.fastq.gz (paired) */
  fastq: SyntheticFile[];
  /**
   * Some paired runs also carry a small <RUN>.fastq.gz of unmated reads, which ENA lists FIRST
   * (`<RUN>.fastq.gz;<RUN>_1…;<RUN>_2…`), so clients must pick mates by suffix, not position.
   */
  orphan?: SyntheticFile;
  /** reads in `orphan` (ENA's read_count counts them: spots = pairs + unpaired) */
  orphanReads?: number;
  /** library_source TRANSCRIPTOMIC SINGLE CELL (discovery by taxon must leave it out) */
  singleCell?: boolean;
  /** <RUN>.sra made with latf-load + kar from the same reads (mates only) */
  sra: SyntheticFile;
  /** true: ENA knows the run's metadata but has no files for it (only SRA serves it) */
  sraOnly: boolean;
}

export interface SyntheticSpecies {
  /** 'Genus species' */
  name: string;
  /** speciesIdOf(name) */
  speciesId: string;
  taxonId: number;
  /** synthetic ENA study accession (PRJEB…) whose filereport lists every run of the species */
  study: string;
  /** <root>/fasta/<Genus_species>.fa (amalgkit naming) */
  fastaPath: string;
  /** <root>/config/amalgkit/amalgkit_<Genus_species>.yaml */
  configPath: string;
  /** <root>/work/<Genus_species>/metadata/metadata.tsv (absent when the spec said runTable: false) */
  runTablePath: string;
  runs: SyntheticRun[];
}

export interface Dataset {
  root: string;
  configDir: string;
  outputDir: string;
  species: SyntheticSpecies[];
}

export interface SpeciesSpec {
  name: string;
  runs: number;
  /** default 0.5 */
  pairedFraction?: number;
  /** default 0 */
  sraOnlyFraction?: number;
  /** runs whose library_source is TRANSCRIPTOMIC SINGLE CELL; default 0 */
  singleCellFraction?: number;
  /** spots per run, default 2000 */
  readsPerRun?: number;
  /** default 100 */
  readLength?: number;
  /** default 20 */
  transcripts?: number;
  /** default 1000 */
  transcriptLength?: number;
  taxonId?: number;
  /** default true; false => config lists runs under fetchquant.runs instead */
  runTable?: boolean;
}
