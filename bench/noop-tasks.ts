/** Handlers for the worker benchmark: as cheap as a task can be. */
export default {
  'tasks.add': (x: number, y: number) => x + y,
};
