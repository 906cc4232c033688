// Entry of a `--pool threads` worker thread: the thread has no loader of its own, so register tsx
// (TypeScript task modules and our sources) before loading the thread's code.
import { register } from 'tsx/esm/api';

register();
await import('./thread-entry.ts');
