import { FlagError } from './flags.js';

const usage = `usage:
  sextant discovery [flags]     run the control plane (see README for flags)
  sextant translate -f PATH [-f PATH...] --proxy NODE_ID [--metadata JSON] [--type lds|rds|cds|eds|all] [-o json|yaml]
  sextant compare --istiod HOST:PORT --sextant HOST:PORT (--node NODE_ID [--metadata JSON] | --pod [NS/]NAME --kubeconfig FILE)
                  [--proxy-type sidecar|router|grpc] [--listeners A,B] [--descriptors FILE] [--expected FILE] [--label NAME] [-o text|json]
  sextant version`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'discovery': {
      const { runDiscovery } = await import('./discovery.js');
      return runDiscovery(rest);
    }
    case 'translate': {
      const { runTranslate } = await import('./translate.js');
      return runTranslate(rest);
    }
    case 'compare': {
      const { runCompare } = await import('./compare.js');
      return runCompare(rest);
    }
    case 'version': {
      const { version } = await import('./version.js');
      process.stdout.write(`sextant ${version}\n`);
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage + '\n');
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`sextant: unknown command "${command}"\n${usage}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof FlagError) {
      process.stderr.write(`sextant: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`sextant: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
