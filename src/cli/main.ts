#!/usr/bin/env node
/**
 * lbc command line: compile, apply, check (and agent, where the target has one).
 * Exit status: 0 done; 1 the spec is invalid or the target cannot express it
 * (diagnostics on stderr, nothing on stdout); 2 usage or I/O problems.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatDiagnostic, LbcError, type Diagnostic } from '../diagnostics/diagnostic.js';
import { checkSpec, compile } from '../index.js';
import type { IR } from '../ir/types.js';
import { TARGETS, targetNames } from '../targets/registry.js';
import { compileForTarget } from '../targets/target.js';
import { hostContext } from '../host/exec.js';
import { joinForStdout, readSpec, writeOutputs } from './io.js';
import { describeService } from './describe.js';
import { matrixMarkdown } from './matrix.js';

const err = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const report = (ds: readonly Diagnostic[]): void => ds.forEach((d) => err(formatDiagnostic(d)));

function loadIR(specPath: string): IR {
  const { text, file } = readSpec(specPath);
  const { ir, diagnostics } = checkSpec(text, file);
  if (!ir) throw new LbcError(diagnostics);
  report(diagnostics);
  return ir;
}

async function cmdCompile(args: { spec: string; target: string; output?: string; 'agent-target'?: string; 'lbc-path'?: string }): Promise<number> {
  const { text, file } = readSpec(args.spec);
  const emit = { specPath: args.spec === '-' || args.spec === '' ? null : args.spec, agentTarget: args['agent-target'], lbcPath: args['lbc-path'] };
  const result = compile(text, args.target, { file, emit });
  report(result.diagnostics);
  if (args.output) {
    for (const p of writeOutputs(result.files, args.output)) err(`lbc: wrote ${p}`);
  } else {
    process.stdout.write(joinForStdout(result.files));
  }
  return 0;
}

async function cmdApply(args: { spec: string; target: string; 'dry-run': boolean; full: boolean }): Promise<number> {
  const def = TARGETS.get(args.target);
  if (!def) throw new LbcError([{ code: 'LBC4002', severity: 'error', message: `unknown target "${args.target}"`, notes: [`targets: ${targetNames().join(', ')}`] }]);
  if (!def.apply) {
    throw new LbcError([
      { code: 'LBC4004', severity: 'error', message: `target ${def.name} cannot be applied on this host`, notes: ['compile it with -o and load the files on the host they are for'] },
    ]);
  }
  const ir = loadIR(args.spec);
  const result = compile(ir, def.name, { emit: { specPath: args.spec === '-' || args.spec === '' ? null : args.spec } });
  report(result.diagnostics);
  await def.apply(result.files, { ...hostContext({ dryRun: args['dry-run'], log: (l) => err(`lbc: ${l}`) }), fullApply: args.full });
  return 0;
}

async function cmdCheck(args: { spec: string; target?: string[] }): Promise<number> {
  const ir = loadIR(args.spec);
  const svcCount = ir.services.length;
  process.stdout.write(`${ir.file}: valid, ${svcCount} service${svcCount === 1 ? '' : 's'}\n`);
  for (const s of ir.services) process.stdout.write(`  ${describeService(s)}\n`);
  const wanted = args.target && args.target.length > 0 ? args.target : targetNames();
  let refused = false;
  process.stdout.write('targets:\n');
  for (const name of wanted) {
    const def = TARGETS.get(name);
    if (!def) throw new LbcError([{ code: 'LBC4002', severity: 'error', message: `unknown target "${name}"`, notes: [`targets: ${targetNames().join(', ')}`] }]);
    let ds: Diagnostic[];
    try {
      ds = compileForTarget(def, ir, { specPath: args.spec === '-' || args.spec === '' ? null : args.spec }).diagnostics;
    } catch (e) {
      if (e instanceof LbcError) ds = e.diagnostics;
      else throw e;
    }
    const errors = ds.filter((d) => d.severity === 'error');
    const leftOut = ds.filter((d) => d.code === 'LBC3003').length;
    const verdict =
      errors.length > 0
        ? 'refused'
        : leftOut === ir.services.length
          ? `nothing to compile: no ${def.families.join('/')} service`
          : ds.some((d) => d.severity === 'warning')
            ? 'compiles, with approximations'
            : 'compiles';
    if (errors.length > 0) refused = true;
    process.stdout.write(`  ${name.padEnd(19)} ${verdict}\n`);
    for (const d of ds) process.stdout.write(`${formatDiagnostic(d).replace(/^/gm, '      ')}\n`);
  }
  return args.target && args.target.length > 0 && refused ? 1 : 0;
}

async function cmdAgent(args: { spec: string; target: string; 'dry-run': boolean }): Promise<number> {
  const def = TARGETS.get(args.target);
  if (!def) throw new LbcError([{ code: 'LBC4002', severity: 'error', message: `unknown target "${args.target}"`, notes: [`targets: ${targetNames().join(', ')}`] }]);
  const ir = loadIR(args.spec);
  const { runAgent } = await import('../agent/index.js');
  return runAgent(ir, def, { log: err, dryRun: args['dry-run'] });
}

async function main(argv: string[]): Promise<number> {
  let code = 0;
  const run = (fn: () => Promise<number>) => async () => {
    code = await fn();
  };
  const targetOpt = { type: 'string', demandOption: true, describe: `one of: ${targetNames().join(', ')}` } as const;
  let pending: Promise<void> | undefined;
  await yargs(argv)
    .scriptName('lbc')
    .usage('$0 <command> SPEC [options]\n\nCompile a load-balancer spec to firewall rules.')
    .command(
      'compile <spec>',
      'print (or write with -o) the configuration for one target; SPEC "-" reads standard input',
      (y) =>
        y
          .positional('spec', { type: 'string', demandOption: true })
          .option('target', { ...targetOpt, alias: 't' })
          .option('output', { alias: 'o', type: 'string', describe: 'write to FILE atomically (a directory when the target emits several files)' })
          .option('agent-target', { type: 'string', describe: 'with --target systemd: the target the agent keeps loaded (default nftables)' })
          .option('lbc-path', { type: 'string', describe: 'with --target systemd: absolute path of lbc in ExecStart (default /usr/local/bin/lbc)' }),
      (a) => {
        pending = run(() => cmdCompile(a as never))();
      },
    )
    .command(
      'apply <spec>',
      'load the configuration on this host, atomically and idempotently',
      (y) =>
        y
          .positional('spec', { type: 'string', demandOption: true })
          .option('target', { ...targetOpt, alias: 't' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the commands instead of running them' })
          .option('full', { type: 'boolean', default: false, describe: 'load the whole ruleset even when lbc knows only part of it changed' }),
      (a) => {
        pending = run(() => cmdApply(a as never))();
      },
    )
    .command(
      'check <spec>',
      'validate the spec and report, per target, whether it compiles there and why not',
      (y) => y.positional('spec', { type: 'string', demandOption: true }).option('target', { alias: 't', type: 'string', array: true, describe: 'only these targets' }),
      (a) => {
        pending = run(() => cmdCheck(a as never))();
      },
    )
    .command(
      'agent <spec>',
      'health-check the backends and keep the live ruleset in step (runs in the foreground until SIGTERM)',
      (y) => y.positional('spec', { type: 'string', demandOption: true }).option('target', { ...targetOpt, alias: 't' }).option('dry-run', { type: 'boolean', default: false, describe: 'run the checks but print the commands instead of running them' }),
      (a) => {
        pending = run(() => cmdAgent(a as never))();
      },
    )
    .command(
      'matrix',
      'print the capability matrix (feature × target) as a Markdown table',
      (y) => y,
      () => {
        pending = run(async () => {
          process.stdout.write(matrixMarkdown([...TARGETS.values()]));
          return 0;
        })();
      },
    )
    .demandCommand(1, 'name a command: compile, apply, check, agent or matrix')
    .strict()
    .help()
    .version(false)
    .fail((msg, e) => {
      if (e) throw e;
      err(`lbc: error: ${msg}`);
      err("run 'lbc --help' for usage");
      code = 2;
    })
    .parseAsync();
  if (pending) await pending;
  return code;
}

main(hideBin(process.argv)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof LbcError) {
      report(e.diagnostics);
      process.exitCode = e.diagnostics.some((d) => d.code.startsWith('LBC4')) && !e.diagnostics.some((d) => d.location) ? 2 : 1;
      return;
    }
    err(`lbc: internal error: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 3;
  },
);
