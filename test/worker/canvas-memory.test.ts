import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { canvasSuite } from './canvas-suite.ts';

canvasSuite('memory', async () => ({ broker: new MemoryBroker(), backend: new MemoryBackend({ submittedTtlSec: 3600 }) }));
