import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { workerSuite } from './worker-suite.ts';

workerSuite('memory', async () => ({ broker: new MemoryBroker(), backend: new MemoryBackend({ submittedTtlSec: 3600 }) }));
