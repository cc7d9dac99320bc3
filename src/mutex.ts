/** mutex: not built yet (see its issue). */
export {};
