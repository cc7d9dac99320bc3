// FdWatcher: readiness of a file descriptor, reported on the event loop (libuv uv_poll),
// so no wait on a pipe, FIFO, socket, mqd_t, eventfd or pidfd ever occupies a thread.
// One watcher per fd; TypeScript asks for readable and/or writable and reads or writes
// itself. The JS object stays alive while it watches (ObjectWrap::Ref).
#include "addon.h"

#include <sys/stat.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>
#include <unordered_set>

namespace ipckit {
namespace {

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "FdWatcher", {
      InstanceMethod<&FdWatcher::Start>("start"),
      InstanceMethod<&FdWatcher::Stop>("stop"),
      InstanceMethod<&FdWatcher::Close>("close"),
      InstanceMethod<&FdWatcher::SetLoopRef>("setLoopRef"),
    });
    exports.Set("FdWatcher", ctor);
  }

  // new FdWatcher(fd, callback(status, events), ownsFd?): status is 0 or a negative libuv
  // error; events is a mask of 1 (readable) and 2 (writable). With ownsFd, close() closes
  // the fd too, and so does the end of the env (a worker that ends) if JS never did.
  explicit FdWatcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0);
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "FdWatcher: callback required");
    // The callback lives on the JS object, not in a C++ persistent, so a watcher that
    // is dropped without close() can still be collected.
    info.This().As<Napi::Object>().Set("_onEvent", info[1]);
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok || loop_ == nullptr) throw Napi::Error::New(env, "FdWatcher: no event loop");
    // Say now, not at the first start, if epoll refuses this fd (a regular file, a
    // directory). fstat cannot tell: an mqd_t is a regular file of the mqueue fs and
    // pollable. So ask epoll itself, on a private epoll instance (as libuv's own check does
    // on the loop's).
    int err = ProbePollable(fd);
    if (err != 0) throw ErrnoError(env, err, "epoll_ctl");
    fd_ = fd;
    env_ = env;
    ownsFd_ = info.Length() > 2 && info[2].ToBoolean();
    if (ownsFd_) AddHook();
  }

  // Collected without close(): an fd it owns is closed too. Removing the env cleanup hook
  // alone (as before) left it open for the life of the thread, and of a worker's process:
  // a writer nobody referenced any more, collected before worker.terminate(), kept its
  // pipe end open.
  ~FdWatcher() override {
    CloseHandle();
    if (!closed_) CloseOwnedFd();
    RemoveHook();
  }

  // 0 if epoll accepts `fd`, else the errno (EPERM for files epoll cannot watch).
  static int ProbePollable(int fd) {
    static int probe = epoll_create1(EPOLL_CLOEXEC);
    if (probe < 0) return 0;  // cannot check here; uv_poll_init will say at the first start
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    if (epoll_ctl(probe, EPOLL_CTL_ADD, fd, &ev) != 0) return errno == EEXIST ? 0 : errno;
    epoll_ctl(probe, EPOLL_CTL_DEL, fd, &ev);
    return 0;
  }

 private:

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (closed_) throw Napi::Error::New(info.Env(), "FdWatcher: closed");
    // The libuv handle is made on the first start, not before: stopping or closing a poll
    // handle removes its fd *number* from epoll, so a watcher that never watched must
    // never own one (if it is collected after its fd was closed and the number reused,
    // it would unregister someone else's fd).
    if (handle_ == nullptr) {
      // Made with the handle (before it, so that a handle never exists without it): a
      // watcher that never waits (the data was already there) costs no async resource,
      // whose strong reference to a JS object would live until our finalizer runs, that is
      // until the event loop turns.
      if (!context_) context_ = std::make_unique<Napi::AsyncContext>(info.Env(), "ipckit.FdWatcher");
      handle_ = new uv_poll_t;
      int err = uv_poll_init(loop_, handle_, fd_);
      if (err != 0) {
        delete handle_;
        handle_ = nullptr;
        throw ErrnoError(info.Env(), -err, "epoll_ctl");
      }
      handle_->data = this;
      AddHook();
      ApplyLoopRef();
    }
    int events = ArgInt(info, 0) & (UV_READABLE | UV_WRITABLE);
    int err = uv_poll_start(handle_, events, OnPoll);
    if (err != 0) throw ErrnoError(info.Env(), -err, "epoll_ctl");
    if (!active_) {
      Ref();
      active_ = true;
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopHandle();
    return info.Env().Undefined();
  }

  // close(): stops watching for good; closes the fd too if the watcher owns it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    closed_ = true;
    CloseHandle();
    CloseOwnedFd();
    RemoveHook();
    return info.Env().Undefined();
  }

  // setLoopRef(false): an active watcher no longer keeps the event loop (the process)
  // alive on its own, like an unref'd timer (a reader with nobody waiting stays armed, so
  // the next wait costs no epoll_ctl); true restores the default. Remembered for a handle
  // made later.
  Napi::Value SetLoopRef(const Napi::CallbackInfo& info) {
    loopRef_ = info.Length() > 0 && info[0].ToBoolean();
    ApplyLoopRef();
    return info.Env().Undefined();
  }

  void ApplyLoopRef() {
    if (handle_ == nullptr) return;
    if (loopRef_) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
    else uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  }

  void StopHandle() {
    if (handle_ != nullptr) uv_poll_stop(handle_);
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  void CloseHandle() {
    StopHandle();
    if (handle_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      handle_ = nullptr;
    }
  }

  void CloseOwnedFd() {
    if (!ownsFd_ || fd_ < 0) return;
    close(fd_);  // Linux releases the fd even on EINTR: never retried
    fd_ = -1;
  }

  void AddHook() {
    if (hooked_) return;
    napi_add_env_cleanup_hook(env_, CleanupHook, this);
    hooked_ = true;
  }

  void RemoveHook() {
    if (!hooked_) return;
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hooked_ = false;
  }

  // A worker thread that ends must not leave an open handle on its loop, nor an fd that
  // only its JS code would have closed.
  static void CleanupHook(void* arg) {
    FdWatcher* self = static_cast<FdWatcher*>(arg);
    self->hooked_ = false;
    self->closed_ = true;
    if (self->handle_ != nullptr) {
      uv_poll_stop(self->handle_);
      uv_close(reinterpret_cast<uv_handle_t*>(self->handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      self->handle_ = nullptr;
    }
    self->CloseOwnedFd();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    FdWatcher* self = static_cast<FdWatcher*>(handle->data);
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    Napi::Object obj = self->Value();  // held by this scope while the callback runs
    // libuv stops the handle itself after an error; keep our bookkeeping in step.
    if (status < 0 && self->active_) {
      self->active_ = false;
      self->Unref();
    }
    try {
      Napi::Value cb = obj.Get("_onEvent");
      if (!cb.IsFunction()) return;
      cb.As<Napi::Function>().MakeCallback(obj, {Napi::Number::New(env, status), Napi::Number::New(env, events)}, *self->context_);
    } catch (const Napi::Error& e) {
      ReportFromLoop(env, e);  // to 'uncaughtException', never out into libuv
    }
  }

  uv_poll_t* handle_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  int fd_ = -1;
  bool closed_ = false;
  bool ownsFd_ = false;
  bool hooked_ = false;
  bool active_ = false;
  bool loopRef_ = true;
  std::unique_ptr<Napi::AsyncContext> context_;
  napi_env env_ = nullptr;
};

// Descriptors a JS object owns before it has a watcher (most short-lived pipes and
// sockets never wait, so they never make one): this thread's set, closed when its env
// ends (a worker that ends must not leave them open). One set and one cleanup hook per
// thread, so owning an fd costs no object of its own (whose finalizer would wait for a
// turn of the event loop).
struct OwnedFds {
  std::unordered_set<int> fds;
};
thread_local OwnedFds* ownedFds = nullptr;

void CloseOwnedFds(void* arg) {
  OwnedFds* owned = static_cast<OwnedFds*>(arg);
  for (int fd : owned->fds) close(fd);
  if (ownedFds == owned) ownedFds = nullptr;
  delete owned;
}

// ownFd(fd): close fd if this thread's env ends before disownFd(fd).
Napi::Value OwnFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  if (ownedFds == nullptr) {
    ownedFds = new OwnedFds();
    napi_add_env_cleanup_hook(info.Env(), CloseOwnedFds, ownedFds);
  }
  ownedFds->fds.insert(fd);
  return info.Env().Undefined();
}

// disownFd(fd): JS closed it, or handed it to a watcher that owns it now.
Napi::Value DisownFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  if (ownedFds != nullptr) ownedFds->fds.erase(fd);
  return info.Env().Undefined();
}

// probePollable(fd): throws (the errno of epoll_ctl) if epoll cannot watch fd, as a new
// FdWatcher does; for objects that make their watcher only when they first wait.
Napi::Value ProbePollableFd(const Napi::CallbackInfo& info) {
  int err = FdWatcher::ProbePollable(ArgInt(info, 0));
  if (err != 0) throw ErrnoError(info.Env(), err, "epoll_ctl");
  return info.Env().Undefined();
}

}  // namespace

void InitPoll(Napi::Env env, Napi::Object exports) {
  FdWatcher::Init(env, exports);
  exports.Set("ownFd", Napi::Function::New(env, OwnFd, "ownFd"));
  exports.Set("disownFd", Napi::Function::New(env, DisownFd, "disownFd"));
  exports.Set("probePollable", Napi::Function::New(env, ProbePollableFd, "probePollable"));
}

}  // namespace ipckit
