/** `lbc matrix`: the capability matrix (feature × target) from the targets' own tables. */
import { TARGETS } from '../../targets/registry.js';
import type { CliCommand } from '../command.js';
import { matrixMarkdown } from '../matrix.js';

export const matrixCommand: CliCommand = {
  usage: 'matrix',
  describe: 'print the capability matrix (feature × target) as a Markdown table',
  options: (y) => y,
  async run(_args, out) {
    await out.stdout(matrixMarkdown([...TARGETS.values()]));
    return 0;
  },
};
