/**
 * Entry point of the `xlb` command (bin/xlb runs this file with tsx).
 */
import { runCli } from './program.ts';

async function main(): Promise<void> {
  process.exitCode = await runCli(process.argv.slice(2));
}

void main();
