/** `lbc schema`: the JSON Schema (draft 2020-12) of the spec, for editors (yaml-language-server) and CI. */
import { specJsonSchemaText } from '../../spec/json-schema.js';
import type { CliCommand } from '../command.js';

export const schemaCommand: CliCommand = {
  usage: 'schema',
  describe: 'print the JSON Schema (draft 2020-12) of the spec, generated from the definitions the validator uses',
  options: (y) => y,
  async run(_args, out) {
    await out.stdout(specJsonSchemaText());
    return 0;
  },
};
