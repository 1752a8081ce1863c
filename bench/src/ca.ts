/**
 * CA benchmark: CSR → certificate on one core (the main thread, in-process:
 * full CSR parse, signature and key checks, identity check, leaf signing, PEM),
 * with an ECDSA P-256 CA and an RSA-2048 CA.
 *
 * - throughput: back-to-back issues for a fixed time; reported per wall second
 *   and per CPU second of this process;
 * - latency at the target rate: an open-loop schedule at the target rate
 *   (3000/s ECDSA, 1000/s RSA); latency counts from the scheduled arrival, so
 *   queueing behind a slow issue is included.
 * Every figure is the median of repeated runs. The CSRs are distinct
 * (ECDSA P-256 keys, as pilot-agent sends with ECC_SIGNATURE_ALGORITHM=ECDSA,
 * the costlier case to verify) and nothing about them is cached.
 */
import { performance } from 'node:perf_hooks';
import { CertificateAuthority, MemoryCaStore, createCsr, generateKey, type KeyAlgorithm } from '@sextant/ca';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))]!;
};

interface CaFigures {
  caKey: KeyAlgorithm;
  targetPerSecond: number;
  throughputPerWallSecond: number;
  throughputPerCpuSecond: number;
  atTargetRate: { rate: number; p50Ms: number; p99Ms: number; achievedPerSecond: number };
  runs: number;
  meetsTarget: boolean;
}

async function benchOne(caKey: KeyAlgorithm, target: number, csrs: { csr: string; id: string }[], runs: number, seconds: number): Promise<CaFigures> {
  const ca = await CertificateAuthority.open(new MemoryCaStore(), { rootKeyAlgorithm: caKey });
  let n = 0;
  const issue = () => {
    const c = csrs[n++ % csrs.length]!;
    ca.issue({ csr: c.csr, identity: c.id });
  };
  for (let i = 0; i < 300; i++) issue(); // warm-up
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let k = 0;
    while (performance.now() - t0 < seconds * 1000) {
      for (let j = 0; j < 20; j++) issue();
      k += 20;
    }
    const dt = (performance.now() - t0) / 1000;
    const du = process.cpuUsage(c0);
    wall.push(k / dt);
    cpu.push(k / ((du.user + du.system) / 1e6));
  }
  // Open loop at the target rate.
  const p50s: number[] = [];
  const p99s: number[] = [];
  const achieved: number[] = [];
  for (let r = 0; r < runs; r++) {
    const count = Math.round(target * seconds);
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / target;
      while (performance.now() < due) {
        /* wait for the arrival time: an open-loop schedule on one core */
      }
      issue();
      lat.push(performance.now() - due);
    }
    achieved.push(count / ((performance.now() - t0) / 1000));
    p50s.push(pct(lat, 50));
    p99s.push(pct(lat, 99));
  }
  const thr = median(wall);
  return {
    caKey,
    targetPerSecond: target,
    throughputPerWallSecond: Math.round(thr),
    throughputPerCpuSecond: Math.round(median(cpu)),
    atTargetRate: { rate: target, p50Ms: +median(p50s).toFixed(3), p99Ms: +median(p99s).toFixed(3), achievedPerSecond: Math.round(median(achieved)) },
    runs,
    meetsTarget: thr >= target,
  };
}

export async function runCaBench(opts: { runs?: number; seconds?: number } = {}): Promise<{ description: string; inputs: Record<string, unknown>; results: CaFigures[] }> {
  const runs = opts.runs ?? 5;
  const seconds = opts.seconds ?? 2;
  const csrs = Array.from({ length: 400 }, (_, i) => {
    const id = `spiffe://cluster.local/ns/ns${i % 20}/sa/sa${i}`;
    return { id, csr: createCsr(generateKey('ecdsa-p256').privateKey, { uris: [id] }) };
  });
  const results = [await benchOne('ecdsa-p256', 3000, csrs, runs, seconds), await benchOne('rsa-2048', 1000, csrs, runs, seconds)];
  return {
    description: 'CSR → certificate on one core (in-process CertificateAuthority.issue); medians of repeated runs',
    inputs: { runs, secondsPerRun: seconds, distinctCsrs: csrs.length, csrKey: 'ecdsa-p256', leafTtl: '24h' },
    results,
  };
}

// Run directly: node bench/dist/ca.js
if (import.meta.url === `file://${process.argv[1]}`) {
  runCaBench().then((r) => console.log(JSON.stringify(r, null, 2)));
}
