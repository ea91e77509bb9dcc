// Regenerates docs that are derived from code: docs/pipeline.md.
import { writeFileSync } from 'node:fs';
import { pipelineMarkdown } from '../dataplane/pipeline-doc.js';

writeFileSync(new URL('../docs/pipeline.md', import.meta.url), pipelineMarkdown());
console.log('wrote docs/pipeline.md');
