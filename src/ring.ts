/** ring: not built yet (see its issue). */
export {};
