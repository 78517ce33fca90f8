/** Every command of the CLI, in the order `lbc --help` lists them; a new command is one import and one entry. */
import type { CliCommand } from '../command.js';
import { agentCommand } from './agent.js';
import { applyCommand } from './apply.js';
import { checkCommand } from './check.js';
import { compileCommand } from './compile.js';
import { matrixCommand } from './matrix.js';
import { planCommand } from './plan.js';
import { removeCommand } from './remove.js';
import { schemaCommand } from './schema.js';
import { statusCommand } from './status.js';

export const COMMANDS: readonly CliCommand[] = [
  compileCommand,
  applyCommand,
  planCommand,
  statusCommand,
  removeCommand,
  checkCommand,
  agentCommand,
  matrixCommand,
  schemaCommand,
];
