/**
 * Checks every task call a submission carries before anything is published: the size of its encoded
 * args + kwargs (MAX_ARGS_BYTES → 413 GW_ERR_ARGS_TOO_LARGE) and, with a task registry, the task name
 * (strict mode) and the args / kwargs schemas (400). Used by POST /tasks/:name (and its link /
 * link_error), the Flower aliases and every node of POST /workflows.
 */
import type { SpecNode } from '../canvas/spec.ts';
import { GatewayError } from '../errors.ts';
import type { Json, JsonObject } from '../protocol/types.ts';
import type { CallLocation, TaskRegistry } from './task-registry.ts';

export const DEFAULT_MAX_ARGS_BYTES = 262144;

/** RFC 6901 token escaping. */
const token = (t: string | number): string => String(t).replace(/~/g, '~0').replace(/\//g, '~1');

export class SubmitGuard {
  readonly maxArgsBytes: number;
  readonly registry: TaskRegistry | undefined;

  constructor(options: { maxArgsBytes?: number; registry?: TaskRegistry | undefined }) {
    this.maxArgsBytes = options.maxArgsBytes ?? DEFAULT_MAX_ARGS_BYTES;
    this.registry = options.registry;
  }

  /**
   * One call: size first (cheap, and keeps ajv away from huge input), then the registry. `bodyBytes`,
   * the byte length of the JSON request body the call was parsed from, spares the size check when that
   * body is too small to hold too much (see fitsUnmeasured).
   */
  call(task: string, args: readonly Json[] | undefined, kwargs: JsonObject | undefined, at: CallLocation & { node?: string }, bodyBytes?: number): void {
    const a = args ?? [];
    const k = kwargs ?? {};
    if (bodyBytes === undefined || !this.fitsUnmeasured(bodyBytes)) this.#size(task, a, k, at.node);
    this.registry?.check(task, a, k, at);
  }

  /**
   * Whether args + kwargs parsed from a JSON body of `bodyBytes` bytes are sure to fit in maxArgsBytes
   * once encoded again. Re-encoding never lengthens a string (the input had to escape whatever
   * JSON.stringify escapes; an invalid UTF-8 byte becomes a 3-byte U+FFFD) and drops whitespace; only a
   * number can grow, at worst `1e20` (4 bytes) to `100000000000000000000` (21). So the encoded args and
   * kwargs take at most 5.25 bytes per body byte, plus `[]` and `{}` when they are absent.
   */
  fitsUnmeasured(bodyBytes: number): boolean {
    return bodyBytes * 6 + 4 <= this.maxArgsBytes;
  }

  #size(task: string, args: unknown, kwargs: unknown, pointer: string | undefined): void {
    const bytes = Buffer.byteLength(JSON.stringify(args)) + Buffer.byteLength(JSON.stringify(kwargs));
    if (bytes > this.maxArgsBytes) {
      throw new GatewayError('GW_ERR_ARGS_TOO_LARGE', `${task}: args and kwargs take ${bytes} bytes encoded, more than MAX_ARGS_BYTES (${this.maxArgsBytes})${pointer !== undefined ? ` (at ${pointer || '/'})` : ''}`, {
        details: { task, bytes, limit: this.maxArgsBytes, ...(pointer !== undefined ? { pointer } : {}) },
      });
    }
  }

  /**
   * Every call of a parsed workflow (or link) node, pointers relative to the request body.
   * `receivesParent`: the node's args get a parent's result prepended when it runs (chain steps after
   * the first, chord bodies, link / link_error callbacks; not `immutable` signatures), so its args are
   * incomplete now and only its kwargs are checked against the registry.
   */
  node(node: SpecNode, receivesParent = false): void {
    switch (node.type) {
      case 'task': {
        const p = node.pointer;
        this.call(node.task, node.args, node.kwargs, {
          node: p, task: `${p}/task`, args: `${p}/args`, kwargs: `${p}/kwargs`, partial: receivesParent && !node.immutable,
        });
        for (const link of node.link) this.node(link, true);
        for (const link of node.linkError) this.node(link, true);
        return;
      }
      case 'chain':
        node.steps.forEach((step, i) => this.node(step, i === 0 ? receivesParent : true));
        return;
      case 'group':
        for (const member of node.members) this.node(member, receivesParent);
        return;
      case 'chord':
        for (const member of node.header) this.node(member, receivesParent);
        this.node(node.body, true);
        return;
      default: {
        // map / starmap / chunks: one celery.map / starmap message whose items are the calls' arguments
        const field = node.type;
        const p = node.pointer;
        const itemsPointer = `${p}/${field}/items`;
        this.#size(node.task, node.items, {}, p);
        if (!this.registry) return;
        if (receivesParent) {
          this.registry.check(node.task, [], {}, { task: `${p}/${field}/task`, args: itemsPointer, kwargs: `${p}/${field}`, partial: true });
          return;
        }
        if (node.items.length === 0) this.registry.check(node.task, [], {}, { task: `${p}/${field}/task`, args: itemsPointer, kwargs: `${p}/${field}`, partial: true });
        node.items.forEach((item, i) => {
          const itemPointer = `${itemsPointer}/${token(i)}`;
          // map: task(item), so the call's /0/x is items/i/x; starmap and chunks: task(*item)
          const args = node.type === 'map' ? [item] : (item as Json[]);
          const at = node.type === 'map' ? (path: string): string => itemPointer + path.replace(/^\/0(?=\/|$)/, '').replace(/^\/\d+$/, '') : itemPointer;
          this.registry!.check(node.task, args, {}, { task: `${p}/${field}/task`, args: at, kwargs: `${p}/${field}` });
        });
      }
    }
  }
}
