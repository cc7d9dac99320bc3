/** shm: not built yet (see its issue). */
export {};
