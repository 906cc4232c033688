/** The conformance suites on the in-process adapters. */
import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { backendConformance } from './backend-suite.ts';
import { brokerConformance } from './broker-suite.ts';

brokerConformance('memory', async () => new MemoryBroker(), { quietMs: 50 });
backendConformance('memory', async () => new MemoryBackend());
