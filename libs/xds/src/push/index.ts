export { PushController, pushRequest, type PushControllerOptions, type PushScope } from './controller.js';
