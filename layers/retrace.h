// Tracing a model again at its data's concrete sizes (see Model): layers keep the output shapes of their
// symbolic call, which summary() and the saved config show, instead of taking the concrete ones.
#pragma once

namespace strata {

// While one is alive on this thread, traced layer calls leave Layer::output_shapes() as it was.
class ConcreteRetrace {
 public:
  ConcreteRetrace();
  ~ConcreteRetrace();
  ConcreteRetrace(const ConcreteRetrace&) = delete;
  ConcreteRetrace& operator=(const ConcreteRetrace&) = delete;
};

}  // namespace strata
