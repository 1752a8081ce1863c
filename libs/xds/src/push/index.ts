export { PushController, pushRequest, type EdsDebounce, type PushControllerOptions, type PushScope } from './controller.js';
