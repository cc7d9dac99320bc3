{
  "variables": {
    "ipckit_copying%": "0"
  },
  "targets": [
    {
      "target_name": "ipckit",
      "sources": [
        "native/addon.cc",
        "native/fd.cc",
        "native/poll.cc",
        "native/process.cc",
        "native/mqueue.cc",
        "native/uring.cc",
        "native/semaphore.cc",
        "native/shm.cc",
        "native/futex.cc",
        "native/socket.cc",
        "native/signal.cc",
        "native/probe.cc",
        "native/blocking.cc",
        "native/filelock.cc",
        "native/sysv.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a call that fails while a worker is being
      # terminated (worker.terminate() during a native call) cannot throw into JavaScript;
      # without this node-addon-api rethrows in C++, which aborts the whole process.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lrt", "-lpthread"],
      # Never unloaded: when a worker that alone loaded the addon ends, Node dlcloses it,
      # and the libuv handles our cleanup hooks close would then call back into unmapped
      # code (a SIGSEGV of the whole process); a SharedArrayBuffer posted on from such a
      # worker would likewise run its deleter in unmapped code.
      "ldflags": ["-Wl,-z,nodelete"],
      "conditions": [
        ["ipckit_copying not in (\"0\", \"false\", 0)", { "defines": ["IPCKIT_NO_EXTERNAL_BUFFERS"] }]
      ]
    },
    {
      "target_name": "ipckit-exec",
      "type": "executable",
      "sources": ["native/exec_helper.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
