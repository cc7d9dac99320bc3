/** workqueue: not built yet (see its issue). */
export {};
